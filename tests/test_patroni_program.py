"""The Patroni on EC2 path under mocks: shape, network rules, secrets, user-data, shared templates."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, PatroniSettings
from components.patroni_cluster import ec2_cluster_spec, node_bundle
from pgha.ci.harness import (
    PROJECT_DIR,
    Plan,
    RegisteredResource,
    Secret,
    _fake_id,
    carrying_aliased_state,
    plain_strings,
    run_program,
)
from pgha.lab.cluster import LAB_TIMING, Lab
from pgha.local import postgres_bindir
from pgha.node.config import NodeConfig, parse
from pgha.node.render import render_etcd, render_patroni, render_pgbackrest

PATRONI = {"engine": "patroni"}
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


@pytest.fixture(scope="module", params=["dev", "prod"])
def plan(request: pytest.FixtureRequest) -> Plan:
    return run_program(request.param, PATRONI)


def user_data(plan: Plan, node: int = 1) -> dict:
    template = plan.get(f"pgha-{plan.stack}-patroni-{node}-lt")
    return yaml.safe_load(base64.b64decode(template.inputs["userData"]).decode())


def written_file(cloud_config: dict, path: str) -> str:
    return next(f["content"] for f in cloud_config["write_files"] if f["path"] == path)


def node_file(plan: Plan, node: int = 1) -> NodeConfig:
    """The node file cloud-init writes for `pgha node bootstrap`, parsed as the node parses it."""
    return parse(written_file(user_data(plan, node), "/etc/pgha/node.json"))


def rendered_patroni(plan: Plan, node: int = 1) -> dict:
    """The patroni.yml the node's bootstrap renders."""
    config = node_file(plan, node)
    return yaml.safe_load(render_patroni(config.cluster, config.node))


def part(plan: Plan, suffix: str) -> RegisteredResource:
    """A resource of the stack's PatroniCluster by its name suffix."""
    return plan.get(f"pgha-{plan.stack}-patroni-{suffix}")


def _id(resource: RegisteredResource) -> str:
    """The id the mocks gave a resource."""
    return _fake_id(resource.name)


def test_three_nodes_in_three_azs(plan: Plan) -> None:
    instances = plan.of_type("aws:ec2/instance:Instance")
    assert len(instances) == 3
    volumes = plan.of_type("aws:ebs/volume:Volume")
    assert len({v.inputs["availabilityZone"] for v in volumes}) == 3
    interfaces = plan.of_type("aws:ec2/networkInterface:NetworkInterface")
    assert len({i.inputs["subnetId"] for i in interfaces}) == 3
    for instance in instances:
        assert "keyName" not in instance.inputs, "no SSH key: access is through SSM"


def test_volumes_are_encrypted_gp3_with_the_cmk_and_imdsv2_is_required(plan: Plan) -> None:
    key_arn = plan.outputs["kmsKeyArn"]
    for volume in plan.of_type("aws:ebs/volume:Volume"):
        assert volume.inputs["encrypted"] is True and volume.inputs["type"] == "gp3"
        assert volume.inputs["kmsKeyId"] == key_arn
    for template in plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert template.inputs["metadataOptions"]["httpTokens"] == "required"
        root = template.inputs["blockDeviceMappings"][0]["ebs"]
        assert root["encrypted"] == "true" and root["kmsKeyId"] == key_arn and root["volumeType"] == "gp3"
        assert template.inputs["imageId"] == "ami-0123456789abcdef0", "AMI comes from the lookup"


def balancer(plan: Plan, suffix: str) -> RegisteredResource:
    """The NLB (``nlb``) or a target group (``rw``, ``ro``): named from the stack's prefix, AWS allows them 32
    characters."""
    return plan.get(f"pgha-{plan.stack}-{suffix}")


def test_nlb_health_checks_patronis_rest_api(plan: Plan) -> None:
    nlb = balancer(plan, "nlb")
    assert nlb.inputs["internal"] is True and nlb.inputs["loadBalancerType"] == "network"
    writer, reader = balancer(plan, "rw"), balancer(plan, "ro")
    assert writer.inputs["healthCheck"]["path"] == "/primary"
    assert reader.inputs["healthCheck"]["path"].startswith("/replica?lag=")
    for group in (writer, reader):
        assert group.inputs["healthCheck"]["port"] == "8008"
        assert group.inputs["healthCheck"]["protocol"] == "HTTPS", "the REST API speaks TLS only"
        assert group.inputs["port"] == 5432
    listeners = {r.inputs["port"]: r for r in plan.of_type("aws:lb/listener:Listener")}
    assert set(listeners) == {5432, 5433}
    assert len(plan.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment")) == 6


def test_security_groups_open_only_what_is_needed(plan: Plan) -> None:
    nodes, nlb = part(plan, "nodes-sg"), part(plan, "nlb-sg")
    node_id, nlb_id = f"sg-{_id(nodes)}", f"sg-{_id(nlb)}"
    hook_id = f"sg-{_id(plan.get(f'pgha-{plan.stack}-schema-sg'))}"
    ingress = [r.inputs for r in plan.of_type(INGRESS)]
    on_nodes = [r for r in ingress if r["securityGroupId"] == node_id]
    assert {(r["fromPort"], r.get("referencedSecurityGroupId")) for r in on_nodes} == {
        (5432, nlb_id),
        (8008, nlb_id),
        (5432, node_id),
        (8008, node_id),
        (2379, node_id),
        (2380, node_id),
        (8008, hook_id),  # the post-deploy hook sets Patroni's dynamic config through the REST API
    }
    assert not any("cidrIpv4" in r for r in on_nodes), "nodes are reached only through the NLB, members or the hook"
    on_nlb = [r for r in ingress if r["securityGroupId"] == nlb_id]
    assert {r["fromPort"] for r in on_nlb} == {5432, 5433}
    assert {r.get("cidrIpv4") for r in on_nlb if "cidrIpv4" in r} == {"10.40.0.0/16"}
    assert any(r.get("referencedSecurityGroupId") == hook_id for r in on_nlb if r["fromPort"] == 5432), (
        "the schema hook reaches the writer listener"
    )
    for rule in ingress:
        assert rule.get("cidrIpv4") != "0.0.0.0/0" and rule["fromPort"] != 22
    open_egress = [r.inputs for r in plan.of_type(EGRESS) if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    assert sorted(r["fromPort"] for r in open_egress) == [80, 443]


def test_backups_go_to_a_private_versioned_encrypted_bucket(plan: Plan) -> None:
    prefix = f"pgha-{plan.stack}-patroni-backups"
    assert plan.get(f"{prefix}-versioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    sse = plan.get(f"{prefix}-sse").inputs["rules"][0]["applyServerSideEncryptionByDefault"]
    assert sse == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": plan.outputs["kmsKeyArn"]}
    block = plan.get(f"{prefix}-private").inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert plan.get(f"{prefix}-lifecycle").inputs["rules"][0]["status"] == "Enabled"
    config = node_file(plan)
    conf = render_pgbackrest(config.cluster, config.node)
    assert f"repo1-s3-bucket={plan.outputs['backupBucket']}" in conf
    assert f"repo1-s3-kms-key-id={plan.outputs['kmsKeyArn']}" in conf and "repo1-s3-key-type=auto" in conf
    assert "pgbackrest" in rendered_patroni(plan)["postgresql"]["parameters"]["archive_command"]
    assert rendered_patroni(plan)["bootstrap"]["post_bootstrap"] == "/etc/pgha/post-bootstrap.sh"


def test_no_password_in_any_plaintext_input_or_user_data(plan: Plan) -> None:
    passwords = plan.of_type("random:index/randomPassword:RandomPassword")
    assert len(passwords) == 5
    values = {f"mock-password-{_id(p)}" for p in passwords}
    version = plan.get(f"pgha-{plan.stack}-patroni-credentials-v")
    assert isinstance(version.inputs["secretString"], Secret)
    for node in (1, 2, 3):  # node keys travel through Secrets Manager only
        assert isinstance(plan.get(f"pgha-{plan.stack}-patroni-{node}-tls-v").inputs["secretString"], Secret)
    for resource in plan.resources:
        texts = list(plain_strings(resource.inputs))
        if resource.type == "aws:ec2/launchTemplate:LaunchTemplate":
            texts.append(base64.b64decode(resource.inputs["userData"]).decode())
            assert "PRIVATE KEY" not in texts[-1]
        for text in texts:
            assert not any(value in text for value in values), f"{resource.name} holds a password"


def test_one_ca_signs_every_node_certificate_for_its_fixed_address(plan: Plan) -> None:
    (ca,) = plan.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True
    nodes = [f"pgha-{plan.stack}-patroni-{node}" for node in (1, 2, 3)]
    certs = [plan.get(f"{node}-cert") for node in nodes]
    assert all({"server_auth", "client_auth"} <= set(c.inputs["allowedUses"]) for c in certs)
    requests = [plan.get(f"{node}-csr") for node in nodes]
    assert all(len(r.inputs["ipAddresses"]) == 1 for r in requests)
    assert len(plan.of_type("aws:ec2/networkInterface:NetworkInterface")) == 3
    # one more: the superuser's client certificate (the post-deploy hook's), for no address and no server
    assert len(plan.of_type("tls:index/locallySignedCert:LocallySignedCert")) == 4


def test_post_deploy_hook_connects_as_the_superuser_with_its_own_client_certificate(plan: Plan) -> None:
    """The nodes admit the superuser from outside the members (the hook comes through the NLB) only with the
    cluster CA's client certificate for its name: the hook may read that certificate's secret, no node may."""
    prefix = f"pgha-{plan.stack}-patroni"
    invocation = plan.get(f"pgha-{plan.stack}-schema-apply")
    arn = json.loads(invocation.inputs["input"])["clientTlsSecretArn"]
    assert arn.rsplit(":", 1)[-1] == f"{prefix}-superuser-client-tls"
    superuser = rendered_patroni(plan)["postgresql"]["authentication"]["superuser"]["username"]
    assert part(plan, "superuser-client-csr").inputs["subject"]["commonName"] == superuser
    assert not part(plan, "superuser-client-csr").inputs.get("ipAddresses")
    assert set(part(plan, "superuser-client-cert").inputs["allowedUses"]) == {"digital_signature", "client_auth"}
    assert isinstance(part(plan, "superuser-client-tls-v").inputs["secretString"], Secret)
    hook_reads = json.loads(plan.get(f"pgha-{plan.stack}-schema-read-secrets").inputs["policy"])["Statement"]
    assert any(arn in statement["Resource"] for statement in hook_reads)
    assert part(plan, "superuser-client-tls-v").urn in set(invocation.dependencies)
    hba = rendered_patroni(plan)["postgresql"]["pg_hba"]
    vpc = node_file(plan).cluster.client_cidrs[0]
    certified = f"hostssl all {superuser} {vpc} scram-sha-256 clientcert=verify-full"
    assert hba.index(certified) < hba.index(f"host all {superuser} all reject")


def test_instances_wait_for_egress_code_and_secrets(plan: Plan) -> None:
    nat_route = [r for r in plan.of_type("aws:ec2/route:Route") if "natGatewayId" in r.inputs]
    assert nat_route, "the patroni engine's network has a NAT route"
    for instance in plan.of_type("aws:ec2/instance:Instance"):
        deps = set(instance.dependencies)
        assert nat_route[0].urn in deps
        assert plan.get(f"pgha-{plan.stack}-patroni-node-bundle").urn in deps
        assert plan.get(f"pgha-{plan.stack}-patroni-credentials-v").urn in deps
        assert any(d.endswith(f"{instance.name}-tls-v") for d in deps)


def test_each_node_has_its_own_role_that_reads_only_its_own_tls_secret(plan: Plan) -> None:
    prefix = f"pgha-{plan.stack}-patroni"
    profiles = {p.name: p for p in plan.of_type("aws:iam/instanceProfile:InstanceProfile")}
    assert set(profiles) == {f"{prefix}-{node}-profile" for node in (1, 2, 3)}
    for node in (1, 2, 3):
        statements = json.loads(part(plan, f"{node}-access").inputs["policy"])["Statement"]
        readable = {
            arn.rsplit(":", 1)[-1]
            for s in statements
            if s["Action"] == "secretsmanager:GetSecretValue"
            for arn in s["Resource"]
        }
        assert readable == {f"{prefix}-credentials", f"{prefix}-{node}-tls"}, "a peer's private key is off limits"
        # writes only where pgBackRest keeps its repository: the node bundle (bootstrap/) runs as root on every
        # later node, so no node may replace it
        config = node_file(plan, node)
        repo_path = re.search(r"^repo1-path=/(.+)$", render_pgbackrest(config.cluster, config.node), re.M)[1]
        [objects] = [s["Resource"] for s in statements if s["Action"] == "s3:GetObject"]
        writable = [s["Resource"] for s in statements if "s3:PutObject" in s["Action"]]
        assert objects.endswith("/*") and writable == [objects.replace("/*", f"/{repo_path}/*")]
        assert profiles[f"{prefix}-{node}-profile"].inputs["role"] == f"{prefix}-{node}-role"
        # on the running instance too, so a changed profile is re-associated in place, not at the next launch
        assert part(plan, str(node)).inputs["iamInstanceProfile"] == f"{prefix}-{node}-profile"
        assert part(plan, f"{node}-lt").inputs["iamInstanceProfile"]["arn"].endswith(f":{prefix}-{node}-profile")


def test_user_data_installs_pinned_packages_and_hashed_python_then_bootstraps(plan: Plan) -> None:
    cloud = user_data(plan)
    raw = base64.b64decode(plan.get(f"pgha-{plan.stack}-patroni-1-lt").inputs["userData"])
    assert len(raw) < 16384, "EC2 refuses user-data over 16 KiB"
    install = written_file(cloud, "/usr/local/sbin/pgha-install")
    assert "etcd-server=3.4.23-4+b4" in install
    assert "for attempt in" in install, "apt is retried"
    pgdg = written_file(cloud, "/etc/apt/preferences.d/pgha-pgdg")
    assert "Package: postgresql-17 postgresql-17-cron pgbackrest" in pgdg and "Pin: origin apt.postgresql.org" in pgdg
    # Debian 12's pgBackRest 2.45 refuses PostgreSQL 16+ ("unexpected control version"): PGDG's, at any version
    assert re.search(r"(^|\s)pgbackrest(\s|$)", install.split("apt-get install", 1)[1].splitlines()[0]), install
    node_install = written_file(cloud, "/usr/local/sbin/pgha-node-install")
    assert "--require-hashes" in node_install and "node-requirements.txt" in node_install
    assert cloud["runcmd"][-1] == ["/usr/local/sbin/pgha-node-bootstrap"]
    assert any("amazon-ssm-agent" in " ".join(map(str, c)) for c in cloud["runcmd"]), "Session Manager, no SSH"
    requirements = (Path(__file__).resolve().parents[1] / "patroni" / "node-requirements.txt").read_text()
    pinned = [line for line in requirements.splitlines() if "==" in line and not line.startswith(" ")]
    assert pinned and all(line.endswith("\\") for line in pinned), "every pin carries hashes"
    config = node_file(plan)
    assert config.service_manager == "systemd" and config.patronictl_config.startswith("/root/")
    assert config.cluster.member_cidrs == tuple(f"{n.address}/32" for n in config.cluster.nodes)


def test_outputs_match_the_rds_path(plan: Plan, dev_plan: Plan) -> None:
    shared = {
        "writerEndpoint",
        "readerEndpoints",
        "port",
        "masterSecretArn",
        "kmsKeyArn",
        "vpcId",
        "subnetIds",
        "securityGroupId",
        "readerPort",
        "schemaHash",
    }
    assert shared <= set(plan.outputs) and shared <= set(dev_plan.outputs)
    assert plan.outputs["backupBucket"]
    hook = plan.get(f"pgha-{plan.stack}-schema-apply")
    assert json.loads(hook.inputs["input"])["host"] == plan.outputs["writerEndpoint"]


def test_user_data_is_valid_cloud_init(plan: Plan, tmp_path: Path) -> None:
    template = plan.get(f"pgha-{plan.stack}-patroni-2-lt")
    path = tmp_path / "user-data.yml"
    path.write_bytes(base64.b64decode(template.inputs["userData"]))
    result = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid" in result.stdout


def test_user_data_patroni_config_passes_patronis_validator() -> None:
    from patroni.validator import populate_validate_params, schema

    local_major = int(postgres_bindir().parent.name)  # validate against binaries this machine has
    plan = run_program("dev", {**PATRONI, "postgresVersion": str(local_major)})
    config = rendered_patroni(plan)
    # the node's launcher supplies the passwords through PATRONI_* variables; the validator wants them inline
    config["restapi"]["authentication"]["password"] = "from-the-environment"
    for user in ("superuser", "replication", "rewind"):
        config["postgresql"]["authentication"][user]["password"] = "from-the-environment"
    populate_validate_params(ignore_listen_port=True)
    assert schema(config) == []


def test_lab_and_ec2_render_the_same_template_differing_only_in_addresses_paths_and_secrets(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path).cluster()
    settings = PatroniSettings(
        ttl=LAB_TIMING.ttl, loop_wait=LAB_TIMING.loop_wait, retry_timeout=LAB_TIMING.retry_timeout
    )
    ec2 = ec2_cluster_spec(
        "pgha-lab",
        ["10.40.0.10", "10.40.64.10", "10.40.128.10"],
        "10.40.0.0/16",
        settings,
        int(postgres_bindir().parent.name),
    )
    differences: set[str] = set()

    def diff(a: object, b: object, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in set(a) | set(b):
                diff(a.get(key), b.get(key), f"{path}.{key}")
        elif a != b:
            differences.add(path)

    for lab_node, ec2_node in zip(lab.nodes, ec2.nodes, strict=True):
        diff(yaml.safe_load(render_patroni(lab, lab_node)), yaml.safe_load(render_patroni(ec2, ec2_node)), "patroni")
        diff(yaml.safe_load(render_etcd(lab, lab_node)), yaml.safe_load(render_etcd(ec2, ec2_node)), "etcd")
    addresses = {
        "patroni.name",
        "patroni.scope",
        "patroni.restapi.listen",
        "patroni.restapi.connect_address",
        "patroni.etcd3.hosts",
        "patroni.postgresql.listen",
        "patroni.postgresql.connect_address",
        "patroni.postgresql.pg_hba",
        "etcd.name",
        "etcd.listen-peer-urls",
        "etcd.listen-client-urls",
        "etcd.initial-advertise-peer-urls",
        "etcd.advertise-client-urls",
        "etcd.initial-cluster",
    }
    paths = {
        "patroni.postgresql.data_dir",
        "patroni.postgresql.bin_dir",
        "patroni.postgresql.pgpass",
        "patroni.postgresql.parameters.unix_socket_directories",
        "patroni.postgresql.parameters.ssl_cert_file",
        "patroni.postgresql.parameters.ssl_key_file",
        "patroni.postgresql.parameters.ssl_ca_file",
        "patroni.postgresql.parameters.cron.host",
        "etcd.data-dir",
        "patroni.restapi.certfile",
        "patroni.restapi.keyfile",
        "patroni.restapi.cafile",
        "patroni.ctl.cacert",
        "patroni.ctl.certfile",
        "patroni.ctl.keyfile",
        "patroni.etcd3.cacert",
        "patroni.etcd3.cert",
        "patroni.etcd3.key",
        "patroni.bootstrap.post_bootstrap",
        *(
            f"etcd.{side}-transport-security.{key}"
            for side in ("client", "peer")
            for key in ("cert-file", "key-file", "trusted-ca-file")
        ),
        # the node's own pgbackrest.conf (the S3 repository: AWS's or the lab's moto)
        "patroni.postgresql.parameters.archive_command",
        "patroni.postgresql.recovery_conf.restore_command",
    }
    assert differences <= addresses | paths, differences - addresses - paths
    assert "patroni.bootstrap.dcs.ttl" not in differences


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"nodes": 4}', "pgha:patroni.nodes = 4: must be an odd number from 3 to 7"),
        ('{"nodes": "3"}', 'pgha:patroni.nodes = "3": must be a whole number'),
        ('{"ttl": 30, "retryTimeout": 30}', "pgha:patroni.timing: loopWait + 2 * retryTimeout = 70 exceeds ttl = 30"),
        ('{"synchronousMode": "yes"}', 'pgha:patroni.synchronousMode = "yes": must be true or false'),
        ('{"instanceType": "large"}', "pgha:patroni.instanceType"),
        ('{"backupTool": "barman"}', "pgha:patroni.backupTool"),
        ('{"replicas": 2}', "pgha:patroni.replicas is not a Patroni setting"),
        ('{"synchronousMode": false, "synchronousModeStrict": true}', "synchronousModeStrict = true needs"),
        ("[3]", "pgha:patroni = '[3]': must be an object"),
    ],
)
def test_invalid_patroni_settings_are_named(value: str, message: str) -> None:
    result = run_program("dev", {**PATRONI, "patroni": value}, check=False)
    assert isinstance(result.error, ConfigError)
    assert message in str(result.error)
    assert result.resources == []


def test_rds_only_settings_are_reported_as_ignored_with_patroni() -> None:
    result = run_program("prod", PATRONI)
    assert not result.of_type("pgha:dr:DrReplica") and not result.of_type("aws:rds/proxy:Proxy")
    assert not result.of_type("aws:rds/instance:Instance")
    (warning,) = result.warnings
    assert "engine patroni ignores the RDS-only" in warning
    assert "pgha:drVpcCidr" in warning and "pgha:proxy" in warning and "pgha:instanceClass" in warning
    # drRegion is read by both engines: with patroni it replicates the backup bucket
    assert "pgha:drRegion" not in warning and "drRegion replicates the backup bucket only" in warning
    assert result.of_type("pgha:patroni:BackupReplica")


@pytest.fixture(scope="module")
def dr_plan() -> Plan:
    return run_program("prod", {**PATRONI, "drRegion": "eu-central-1"})


def _policy(resource: RegisteredResource) -> dict:
    return json.loads(resource.inputs["policy"])


def test_backup_replica_lives_in_the_dr_region_with_the_sources_controls(dr_plan: Plan) -> None:
    provider = dr_plan.get("pgha-prod-dr-provider")
    assert provider.inputs["region"] == "eu-central-1"
    assert json.loads(provider.inputs["defaultTags"])["tags"]["environment"] == "prod"  # provider inputs are JSON
    in_dr = [r for r in dr_plan.resources if r.name.startswith("pgha-prod-patroni-dr-")]
    assert {r.name for r in in_dr} >= {
        "pgha-prod-patroni-dr-backups",
        "pgha-prod-patroni-dr-backups-key",
        "pgha-prod-patroni-dr-backup-logs",
    }
    assert all(r.provider.startswith(provider.urn + "::") for r in in_dr if r.custom)
    source = part(dr_plan, "backups")
    assert not source.provider.startswith(provider.urn)  # the source stays in the stack's region

    replica, key = part(dr_plan, "dr-backups"), part(dr_plan, "dr-backups-key")
    assert replica.protect and key.protect and source.protect  # Pulumi.prod.yaml: deletionProtection true
    assert key.inputs["enableKeyRotation"] is True
    dr_key_arn = f"arn:aws:kms:eu-central-1:123456789012:key/{_fake_id(key.name)}"  # the mocks' ARN
    sse = part(dr_plan, "dr-backups-sse").inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": dr_key_arn}
    assert part(dr_plan, "dr-backups-versioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    block = part(dr_plan, "dr-backups-private").inputs
    assert all(block[k] for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    (deny,) = _policy(part(dr_plan, "dr-backups-tls-only"))["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert part(dr_plan, "dr-backups-lifecycle").inputs["rules"] == part(dr_plan, "backups-lifecycle").inputs["rules"]
    for config in ("dr-backups-sse", "dr-backups-versioning", "dr-backups-private", "dr-backups-tls-only"):
        assert part(dr_plan, config).property_dependencies["bucket"] == [replica.urn]
    assert dr_plan.outputs["drBackupBucket"].startswith("pgha-prod-patroni-dr-backups-")
    assert dr_plan.outputs["drBackupBucket"] != dr_plan.outputs["backupBucket"]


def test_backup_bucket_replicates_kms_objects_with_a_least_privilege_role(dr_plan: Plan) -> None:
    config = part(dr_plan, "backups-replication")
    role = part(dr_plan, "backups-replication-role")
    source, replica = part(dr_plan, "backups"), part(dr_plan, "dr-backups")
    assert config.property_dependencies["bucket"] == [source.urn]
    assert config.property_dependencies["role"] == [role.urn]
    # AWS refuses replication before both buckets are versioned
    assert {part(dr_plan, "backups-versioning").urn, part(dr_plan, "dr-backups-versioning").urn} <= set(
        config.dependencies
    )
    (rule,) = config.inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
    assert rule["deleteMarkerReplication"] == {"status": "Enabled"}
    source_key = dr_plan.outputs["kmsKeyArn"]
    dr_key = f"arn:aws:kms:eu-central-1:123456789012:key/{_fake_id('pgha-prod-patroni-dr-backups-key')}"
    replica_arn = f"arn:aws:s3:eu-central-1:123456789012:{replica.name}"  # the mocks' ARN
    assert rule["destination"]["bucket"] == replica_arn
    assert rule["destination"]["encryptionConfiguration"] == {"replicaKmsKeyId": dr_key}

    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "s3.amazonaws.com"}]
    statements = _policy(part(dr_plan, "backups-replication-access"))["Statement"]
    grants = {
        action: s for s in statements for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert all("*" not in action for action in grants) and all(s["Effect"] == "Allow" for s in statements)
    source_arn = f"arn:aws:s3:eu-west-1:123456789012:{source.name}"
    assert grants["s3:GetObjectVersionForReplication"]["Resource"] == f"{source_arn}/*"
    assert grants["s3:ListBucket"]["Resource"] == source_arn
    assert grants["s3:ReplicateObject"]["Resource"] == f"{replica_arn}/*"
    assert not any(action.startswith(("s3:Put", "s3:Delete")) for action in grants)
    decrypt, encrypt = grants["kms:Decrypt"], grants["kms:Encrypt"]
    assert decrypt["Resource"] == source_key and encrypt["Resource"] == dr_key
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}
    assert encrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}
    assert encrypt["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": [replica_arn, f"{replica_arn}/*"]}
    assert set(grants) == {
        "s3:GetReplicationConfiguration",
        "s3:ListBucket",
        "s3:GetObjectVersionForReplication",
        "s3:GetObjectVersionAcl",
        "s3:GetObjectVersionTagging",
        "s3:ReplicateObject",
        "s3:ReplicateDelete",
        "s3:ReplicateTags",
        "kms:Decrypt",
        "kms:Encrypt",
    }


def test_without_a_dr_region_nothing_is_replicated() -> None:
    plan = run_program("prod", {**PATRONI, "drRegion": None, "drVpcCidr": None})
    assert plan.error is None and plan.warnings and "drRegion" not in plan.warnings[0]
    assert not plan.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    assert not plan.of_type("pgha:patroni:BackupReplica")
    assert [r.name for r in plan.of_type("pulumi:providers:aws")] == ["aws"]
    assert not [r for r in plan.resources if r.name.startswith("pgha-prod-patroni-dr-")]
    assert "drBackupBucket" not in plan.outputs and "drRegion" not in plan.outputs


def test_five_nodes_spread_over_three_azs() -> None:
    plan = run_program("dev", {**PATRONI, "patroni": '{"nodes": 5}'})
    assert len(plan.of_type("aws:ec2/instance:Instance")) == 5
    config = node_file(plan, 5)
    etcd = yaml.safe_load(render_etcd(config.cluster, config.node))
    assert etcd["initial-cluster"].count("=https://") == 5


def test_alarms_fire_when_no_primary_is_behind_the_writer(plan: Plan) -> None:
    alarms = {a.name: a.inputs for a in plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    writer = alarms[f"pgha-{plan.stack}-alarms-writer-no-primary"]
    assert (writer["namespace"], writer["metricName"], writer["comparisonOperator"], writer["threshold"]) == (
        "AWS/NetworkELB",
        "HealthyHostCount",
        "LessThanThreshold",
        1,
    )
    assert writer["dimensions"]["TargetGroup"].startswith(f"targetgroup/pgha-{plan.stack}-rw/")
    assert writer["treatMissingData"] == "breaching" and writer["alarmActions"]
    assert alarms[f"pgha-{plan.stack}-alarms-reader-replicas"]["threshold"] == 2
    assert sum(1 for name in alarms if name.endswith("-status")) == 3
    assert not plan.of_type("aws:rds/eventSubscription:EventSubscription")
    if plan.stack == "prod":
        (subscription,) = plan.of_type("aws:sns/topicSubscription:TopicSubscription")
        assert subscription.inputs["endpoint"] == "dba-oncall@example.com"


def _verify_units(units: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify`` the units, with the node's own scripts replaced by stubs under tmp_path."""
    stubs = tmp_path / "stubs"
    stubs.mkdir(parents=True, exist_ok=True)
    directory = tmp_path / "units"
    directory.mkdir(exist_ok=True)
    for name, text in units.items():
        for prefix in ("/usr/local/sbin/", "/opt/patroni/bin/"):  # created by cloud-init on a node
            text = text.replace(prefix, f"{stubs}/")
        for stub in re.findall(rf"{re.escape(str(stubs))}/[\w.-]+", text):
            Path(stub).write_text("#!/bin/sh\n")
            Path(stub).chmod(0o755)
        (directory / name).write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in directory.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_node_file_requires_the_data_volume_mounted_where_cloud_init_mounts_it(plan: Plan) -> None:
    config = node_file(plan)
    assert config.data_mount == "/var/lib/pgha"
    assert all(Path(path).is_relative_to(config.data_mount) for path in config.data_paths().values())
    mount_script = written_file(user_data(plan), "/usr/local/sbin/pgha-mount-data")
    assert f"LABEL=pgha-data {config.data_mount} xfs" in mount_script
    assert f"mountpoint -q {config.data_mount} || mount {config.data_mount}" in mount_script


def test_units_pass_systemd_analyze_verify(plan: Plan, tmp_path: Path) -> None:
    units = {
        f["path"].rsplit("/", 1)[1]: f["content"]
        for f in user_data(plan)["write_files"]
        if f["path"].startswith("/etc/systemd/system/")
    }
    assert set(units) == {
        "pgha-etcd.service",
        "patroni.service",
        "pgha-backup-full.service",
        "pgha-backup-full.timer",
        "pgha-backup-diff.service",
        "pgha-backup-diff.timer",
    }
    result = _verify_units(units, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for service in ("pgha-etcd.service", "patroni.service"):
        text = units[service]
        assert "RequiresMountsFor=/var/lib/pgha/" in text and "Restart=always" in text
        # RequiresMountsFor= is met by / when the volume has no mount unit: the mount itself is checked
        # before anything else starts (and again by the bootstrap in Patroni's ExecStartPre=+)
        checks = [line for line in text.splitlines() if line.startswith("ExecStartPre=")]
        assert checks[0] == "ExecStartPre=/usr/bin/mountpoint /var/lib/pgha", checks
        assert "StartLimitIntervalSec=0" in text, "a transient failure never leaves the node failed for good"
    broken = _verify_units(
        {"patroni.service": units["patroni.service"].replace("Restart=", "Restrat=")}, tmp_path / "broken"
    )
    assert "Restrat" in broken.stdout + broken.stderr, "the check can fail"


def test_nlb_is_deletion_protected_with_protection_and_backup_access_is_logged(plan: Plan) -> None:
    protected = plan.stack == "prod"  # Pulumi.prod.yaml keeps deletionProtection on
    assert bool(balancer(plan, "nlb").inputs.get("enableDeletionProtection")) is protected
    logging = plan.get(f"pgha-{plan.stack}-patroni-backups-logging").inputs
    logs = part(plan, "backup-logs")
    assert logging["targetBucket"] == logs.name  # the mocks give a bucket its name as id
    sse = plan.get(f"pgha-{plan.stack}-patroni-backup-logs-sse").inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    policy = json.loads(plan.get(f"pgha-{plan.stack}-patroni-backup-logs-policy").inputs["policy"])
    assert {s["Sid"] for s in policy["Statement"]} == {"S3ServerAccessLogs", "DenyPlainHttp"}


def test_post_deploy_hook_keeps_patronis_dynamic_config_at_what_the_nodes_render(plan: Plan) -> None:
    """bootstrap.dcs counts only when a cluster is created: the hook carries it to the running one."""
    invocation = plan.get(f"pgha-{plan.stack}-schema-apply")
    target = json.loads(invocation.inputs["input"])["patroni"]
    assert target["urls"] == [f"https://{node.address}:8008" for node in node_file(plan).cluster.nodes]
    assert target["dynamicConfig"] == rendered_patroni(plan)["bootstrap"]["dcs"]
    # the CA the nodes' certificates chain to (from their TLS secrets); the password by its key in the secret
    tls = json.loads(plan.get(f"pgha-{plan.stack}-patroni-1-tls-v").inputs["secretString"].value)
    assert target["caCert"] == tls["ca"] and "BEGIN CERTIFICATE" in tls["ca"]
    credentials = json.loads(plan.get(f"pgha-{plan.stack}-patroni-credentials-v").inputs["secretString"].value)
    assert (
        target["passwordKey"] in credentials
        and target["user"] == rendered_patroni(plan)["restapi"]["authentication"]["username"]
    )
    # the hook reaches the REST API (out of its group, into the nodes' group) before it is invoked
    hook_sg, node_sg = plan.get(f"pgha-{plan.stack}-schema-sg"), part(plan, "nodes-sg")
    into_nodes = plan.get(f"pgha-{plan.stack}-restapi-from-schema-hook")
    assert (
        into_nodes.inputs["securityGroupId"],
        into_nodes.inputs["referencedSecurityGroupId"],
        into_nodes.inputs["fromPort"],
    ) == (f"sg-{_id(node_sg)}", f"sg-{_id(hook_sg)}", 8008)
    out_of_hook = plan.get(f"pgha-{plan.stack}-schema-to-8008")
    assert out_of_hook.type == EGRESS and out_of_hook.inputs["securityGroupId"] == f"sg-{_id(hook_sg)}"
    assert out_of_hook.inputs["cidrIpv4"] == node_file(plan).cluster.client_cidrs[0], "inside the VPC only"
    assert {into_nodes.urn, out_of_hook.urn} <= set(invocation.dependencies)


def test_a_changed_patroni_setting_re_runs_the_hook_with_the_new_value() -> None:
    before = run_program("dev", PATRONI).get("pgha-dev-schema-apply")
    after = run_program("dev", {**PATRONI, "patroni": '{"ttl": 26, "loopWait": 3}'}).get("pgha-dev-schema-apply")
    assert after.inputs["triggers"]["patroniConfig"] != before.inputs["triggers"]["patroniConfig"]
    assert after.inputs["triggers"]["migrationsHash"] == before.inputs["triggers"]["migrationsHash"]
    sent = json.loads(after.inputs["input"])["patroni"]["dynamicConfig"]
    assert (sent["ttl"], sent["loop_wait"]) == (26, 3)


def test_rds_hook_has_no_patroni_target(dev_plan: Plan) -> None:
    invocation = dev_plan.get("pgha-dev-schema-apply")
    assert "patroni" not in json.loads(invocation.inputs["input"])
    assert "patroniConfig" not in invocation.inputs["triggers"]
    assert not [r for r in dev_plan.resources if "restapi" in r.name]


def test_an_impaired_az_moves_no_node_volume() -> None:
    """The data volumes' AZ is force-new: an AZ impaired during an incident must not shift the others."""
    from pgha.ci.harness import zone_states

    def volume_azs(plan: Plan) -> dict[str, str]:
        return {r.name: r.inputs["availabilityZone"] for r in plan.of_type("aws:ebs/volume:Volume")}

    five = {"engine": "patroni", "patroni": json.dumps({"nodes": 5})}
    healthy = volume_azs(run_program("dev", five))
    with zone_states({"eu-west-1b": "unavailable"}):
        during_incident = run_program("dev", five, check=False)
    assert during_incident.error is None, during_incident.error
    assert volume_azs(during_incident) == healthy
    # five nodes round-robin over three AZs: a, b, c, a, b
    assert [healthy[f"pgha-dev-patroni-{n}-data"] for n in range(1, 6)] == [f"eu-west-1{z}" for z in "abcab"]


def test_post_deploy_hook_waits_for_its_way_into_the_cluster(plan: Plan) -> None:
    """The invocation connects through the NLB's writer listener: the rule admitting the hook, the listeners
    and the target-group attachments must exist before it runs, not only the nodes."""
    prefix = f"pgha-{plan.stack}"
    invocation = plan.get(f"{prefix}-schema-apply")
    rule = plan.get(f"{prefix}-db-from-schema-hook")
    assert rule.inputs["securityGroupId"] == plan.outputs["securityGroupId"] and rule.inputs["fromPort"] == 5432
    serving = [
        *plan.of_type("aws:lb/listener:Listener"),
        *plan.of_type("aws:lb/targetGroupAttachment:TargetGroupAttachment"),
    ]
    assert len(serving) == 2 + 2 * len(plan.of_type("aws:ec2/instance:Instance"))
    for needed in [rule, *serving]:
        assert needed.urn in invocation.dependencies, needed.name


def test_the_node_bundle_ships_the_sources_and_no_bytecode_cache() -> None:
    """.pyc files depend on the machine running `pulumi up`: shipped, they would re-upload an unchanged bundle."""
    cache = PROJECT_DIR / "pgha" / "node" / "__pycache__"
    cache.mkdir(exist_ok=True)
    marker = cache / "pgha_test_marker.cpython-311.pyc"
    marker.write_bytes(b"not shipped")
    try:
        names = set(node_bundle()[0].assets)
    finally:
        marker.unlink()
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert {"pgha/node/bootstrap.py", "pgha/__main__.py"} <= names
    assert any(name.startswith("patroni/") and name.endswith(".j2") for name in names)


def test_the_balancers_keep_the_names_of_stacks_made_before(plan: Plan) -> None:
    """Renamed to fit AWS's 32 characters with a longer stack name, they alias their old names: a deployed
    cluster keeps its NLB and target groups (Pulumi reuses the autoname of the aliased state)."""
    for new, old in (("nlb", "patroni-nlb"), ("rw", "patroni-writer"), ("ro", "patroni-reader")):
        resource = balancer(plan, new)
        assert resource.urn.rsplit("::", 1)[0] + f"::pgha-{plan.stack}-{old}" in resource.options["aliases"]
    # a new stack's NLB has the new name; an update carries the aliased state over, as the engine does
    assert plan.outputs["writerEndpoint"] == f"pgha-{plan.stack}-nlb.elb.amazonaws.com"
    with carrying_aliased_state():
        updated = run_program(plan.stack, {"engine": "patroni"})
    assert updated.outputs["writerEndpoint"] == f"pgha-{plan.stack}-patroni-nlb.elb.amazonaws.com"
