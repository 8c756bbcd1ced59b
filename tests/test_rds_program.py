"""The RDS path, asserted on the resources the real program registers under mocks."""

from __future__ import annotations

import json
import re

import pytest

from pgha.ci.harness import Plan, RegisteredResource, Secret, _fake_id, plain_strings, run_program

INSTANCE = "aws:rds/instance:Instance"


def primary(plan: Plan) -> RegisteredResource:
    return plan.get(f"pgha-{plan.stack}-primary")


def replicas(plan: Plan) -> list[RegisteredResource]:
    return [r for r in plan.of_type(INSTANCE) if r.inputs.get("replicateSourceDb")]


def key_arn(plan: Plan, name: str) -> str:
    """The ARN the mocks gave the KMS key registered under ``name``."""
    key = plan.get(name)
    assert key.type == "aws:kms/key:Key"
    return f"arn:aws:kms:{plan.region_of(key)}:123456789012:key/{_fake_id(name)}"


def test_prod_primary_is_multi_az_encrypted_private_and_protected(prod_plan: Plan) -> None:
    db = primary(prod_plan).inputs
    cmk = key_arn(prod_plan, "pgha-prod-key")
    assert db["multiAz"] is True
    assert db["storageEncrypted"] is True and db["kmsKeyId"] == cmk
    assert db["performanceInsightsEnabled"] is True and db["performanceInsightsKmsKeyId"] == cmk
    assert db["manageMasterUserPassword"] is True and db["masterUserSecretKmsKeyId"] == cmk
    assert "password" not in db
    assert db["publiclyAccessible"] is False
    assert db["iamDatabaseAuthenticationEnabled"] is True
    assert db["storageType"] == "gp3" and db["maxAllocatedStorage"] == 2000
    assert db["deletionProtection"] is True
    assert db["skipFinalSnapshot"] is False and db["finalSnapshotIdentifier"].startswith("pgha-prod-primary-final-")
    assert db["backupRetentionPeriod"] == 14
    assert db["backupWindow"] == "02:00-03:00" and db["maintenanceWindow"] == "sun:04:00-sun:05:00"
    assert db["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert db["copyTagsToSnapshot"] is True and db["autoMinorVersionUpgrade"] is True
    assert db["caCertIdentifier"].startswith("rds-ca-")
    assert db["monitoringInterval"] > 0
    role = prod_plan.get("pgha-prod-monitoring-role")
    assert "monitoring.rds.amazonaws.com" in role.inputs["assumeRolePolicy"]
    assert role.urn in primary(prod_plan).dependencies


def test_dev_is_small_and_disposable(dev_plan: Plan) -> None:
    db = primary(dev_plan).inputs
    assert db["instanceClass"] == "db.t4g.medium"
    assert db["deletionProtection"] is False and db["skipFinalSnapshot"] is True
    assert len(replicas(dev_plan)) == 1
    assert "drReplicaArn" not in dev_plan.outputs
    assert not [r for r in dev_plan.resources if r.type == "pgha:dr:DrReplica"]


def test_parameter_group_matches_major_version_and_enforces_tls(any_plan: Plan) -> None:
    group = any_plan.get(f"pgha-{any_plan.stack}-pg17")
    assert group.inputs["family"] == "postgres17"
    params = {p["name"]: p["value"] for p in group.inputs["parameters"]}
    assert params["rds.force_ssl"] == "1"
    assert {"pg_stat_statements", "pg_cron"} <= set(params["shared_preload_libraries"].split(","))
    assert params["log_statement"] == "ddl"
    assert int(params["log_min_duration_statement"]) == 1000
    assert group.urn in primary(any_plan).dependencies


def test_major_version_change_makes_a_new_parameter_group() -> None:
    plan = run_program("dev", {"postgresVersion": "16"})
    groups = plan.of_type("aws:rds/parameterGroup:ParameterGroup")
    assert [g.name for g in groups] == ["pgha-dev-pg16"]
    assert groups[0].inputs["family"] == "postgres16"
    assert primary(plan).inputs["engineVersion"] == "16"


def test_replicas_follow_the_primary_in_other_azs(prod_plan: Plan) -> None:
    reps = [r for r in replicas(prod_plan) if "-dr-" not in r.name]
    assert len(reps) == 2
    primary_db = primary(prod_plan)
    for replica in reps:
        assert replica.inputs["replicateSourceDb"] == "pgha-prod-primary"
        assert primary_db.urn in replica.dependencies
        assert replica.inputs["storageEncrypted"] is True
        assert replica.inputs["kmsKeyId"] == primary_db.inputs["kmsKeyId"]
        assert replica.inputs["performanceInsightsEnabled"] is True
        assert replica.inputs["monitoringInterval"] == primary_db.inputs["monitoringInterval"]
        assert replica.inputs["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
        assert replica.inputs["publiclyAccessible"] is False
    assert sorted(r.inputs["availabilityZone"] for r in reps) == ["eu-west-1b", "eu-west-1c"]


def test_dr_replica_uses_its_own_region_provider_key_and_subnets(prod_plan: Plan) -> None:
    dr = prod_plan.get("pgha-prod-dr-replica")
    provider = prod_plan.get("pgha-prod-dr-provider")
    assert provider.inputs["region"] == "eu-central-1"
    assert dr.provider.startswith(provider.urn)
    assert dr.inputs["replicateSourceDb"] == "arn:aws:rds:eu-west-1:123456789012:db:pgha-prod-primary"
    assert dr.inputs["kmsKeyId"] == key_arn(prod_plan, "pgha-prod-dr-key")
    assert prod_plan.get("pgha-prod-dr-key").provider.startswith(provider.urn)
    subnets = prod_plan.get("pgha-prod-dr-net-db-subnets")
    assert subnets.provider.startswith(provider.urn)
    assert subnets.urn in dr.dependencies
    # no automated backups while it replicates (a replica backing up cannot be promoted); the primary's
    # are replicated to the DR region instead
    assert dr.inputs["backupRetentionPeriod"] == 0
    backups = prod_plan.get("pgha-prod-dr-backup-replication")
    assert backups.provider.startswith(provider.urn)
    assert backups.inputs["kmsKeyId"] == dr.inputs["kmsKeyId"]
    assert prod_plan.outputs["drReplicaArn"].endswith(":db:pgha-prod-dr-replica")


def _queries(alarm: RegisteredResource) -> dict[str, dict]:
    """A metric-math alarm's queries by id."""
    return {q["id"]: q for q in alarm.inputs.get("metricQueries", [])}


def _reads(alarm: RegisteredResource, metric: str) -> str | None:
    """The instance whose ``metric`` the alarm reads (directly or in its expression), if any."""
    if alarm.inputs.get("metricName") == metric:
        return alarm.inputs["dimensions"]["DBInstanceIdentifier"]
    for query in _queries(alarm).values():
        if query.get("metric", {}).get("metricName") == metric:
            return query["metric"]["dimensions"]["DBInstanceIdentifier"]
    return None


def test_every_in_region_replica_has_a_lag_alarm_gated_on_primary_writes(any_plan: Plan) -> None:
    alarms = any_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    lag = [a for a in alarms if _reads(a, "ReplicaLag")]
    in_region = [r for r in replicas(any_plan) if "-dr-" not in r.name]
    assert {_reads(a, "ReplicaLag") for a in lag} == {r.inputs["identifier"] for r in in_region}
    for alarm in lag:
        assert alarm.inputs["threshold"] == 1.0  # the seed's KPI
        assert alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm.inputs["alarmActions"], "alarm goes nowhere"
        # an idle primary (no WAL) turns the lag into 0, not into a page
        assert _reads(alarm, "TransactionLogsGeneration") == f"pgha-{any_plan.stack}-primary"
        expression = next(q for q in _queries(alarm).values() if q.get("returnData"))["expression"]
        assert expression.startswith("IF(wal >= ") and expression.endswith(", lag, 0)")
        assert _queries(alarm)["lag"]["metric"]["stat"] == "Maximum"
        # a replica that stops reporting (promoted, replaced) must not page forever; broken replication is an event
        assert alarm.inputs["treatMissingData"] == "notBreaching"
        assert (alarm.inputs["evaluationPeriods"], alarm.inputs["datapointsToAlarm"]) == (5, 3)
    events = any_plan.get(f"pgha-{any_plan.stack}-alarms-events")
    assert "read replica" in events.inputs["eventCategories"]


def test_dr_replica_lag_is_watched_from_the_primary_region_by_slot_lag(prod_plan: Plan) -> None:
    alarm = prod_plan.get("pgha-prod-alarms-primary-slowest-replica")
    assert alarm.provider.startswith(prod_plan.get("aws").urn)
    assert _reads(alarm, "OldestReplicationSlotLag") == "pgha-prod-primary"
    assert _reads(alarm, "TransactionLogsGeneration") == "pgha-prod-primary"
    expression = _queries(alarm)["e1"]["expression"]
    assert "slot / wal" in expression and expression.endswith(", 0)")
    assert alarm.inputs["threshold"] == 1.0 and alarm.inputs["treatMissingData"] == "notBreaching"
    dr_alarms = [a for a in prod_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") if "-dr-alarms-" in a.name]
    assert dr_alarms and not [a for a in dr_alarms if _reads(a, "ReplicaLag")]


def test_dev_without_dr_has_no_slot_alarm(dev_plan: Plan) -> None:
    assert not [a for a in dev_plan.resources if a.name.endswith("slowest-replica")]


def test_kpi_alarms_on_every_instance_go_to_the_topic(prod_plan: Plan) -> None:
    alarms = prod_plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    for instance in prod_plan.of_type(INSTANCE):
        metrics = {
            a.inputs["metricName"]
            for a in alarms
            if "metricName" in a.inputs
            and a.inputs["dimensions"]["DBInstanceIdentifier"] == instance.inputs["identifier"]
        }
        assert {"CPUUtilization", "FreeStorageSpace", "DatabaseConnections", "FreeableMemory"} <= metrics
    conn = next(a for a in alarms if a.name == "pgha-prod-alarms-primary-connections")
    assert conn.inputs["threshold"] == 640  # 80% of maxConnections 800
    subs = prod_plan.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert {s.inputs["endpoint"] for s in subs} == {"dba-oncall@example.com"}
    topic = prod_plan.get("pgha-prod-alarms-alerts")
    assert topic.inputs["kmsMasterKeyId"]


def test_event_subscription_covers_failover_and_failure(any_plan: Plan) -> None:
    sub = any_plan.get(f"pgha-{any_plan.stack}-alarms-events")
    assert {"failover", "failure", "maintenance"} <= set(sub.inputs["eventCategories"])
    assert f"pgha-{any_plan.stack}-primary" in sub.inputs["sourceIds"]


def test_kms_key_rotates_and_has_explicit_policy(any_plan: Plan) -> None:
    for key in any_plan.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True
        policy = json.loads(key.inputs["policy"])
        assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}


def test_no_ingress_from_anywhere(any_plan: Plan) -> None:
    rules = any_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rules
    for rule in rules:
        assert rule.inputs.get("cidrIpv4") not in ("0.0.0.0/0",)
        assert rule.inputs.get("cidrIpv6") not in ("::/0",)
        assert rule.inputs.get("ipProtocol") != "-1"
    for group in any_plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in group.inputs.get("ingress", []):
            assert "0.0.0.0/0" not in rule.get("cidrBlocks", [])


def test_database_port_admits_only_allowed_cidrs(dev_plan: Plan) -> None:
    sg = dev_plan.get("pgha-dev-net-db-sg")
    rules = [
        r
        for r in dev_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if sg.urn in r.dependencies
    ]
    assert {r.inputs["fromPort"] for r in rules} == {5432}
    assert [r.inputs["cidrIpv4"] for r in rules if "cidrIpv4" in r.inputs] == ["10.40.0.0/16"]
    sources = {r.name: r.inputs.get("referencedSecurityGroupId") for r in rules if "cidrIpv4" not in r.inputs}
    hook_sg = dev_plan.get("pgha-dev-schema-sg")
    assert sources == {"pgha-dev-db-from-schema-hook": f"sg-{_fake_id(hook_sg.name)}"}


def test_network_spans_three_azs_with_private_subnets_only(any_plan: Plan) -> None:
    subnets = [s for s in any_plan.of_type("aws:ec2/subnet:Subnet") if "-dr-" not in s.name]
    assert len({s.inputs["availabilityZone"] for s in subnets}) == 3
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    assert not any_plan.of_type("aws:ec2/internetGateway:InternetGateway")
    endpoint = any_plan.get(f"pgha-{any_plan.stack}-net-secretsmanager-endpoint")
    assert endpoint.inputs["serviceName"] == "com.amazonaws.eu-west-1.secretsmanager"
    s3 = any_plan.get(f"pgha-{any_plan.stack}-net-s3-endpoint")
    assert s3.inputs["vpcEndpointType"] == "Gateway" and s3.inputs["routeTableIds"]


def test_bring_your_own_vpc_makes_no_vpc() -> None:
    plan = run_program(
        "dev",
        {
            "vpcCidr": None,
            "vpcId": "vpc-0123456789abcdef0",
            "subnetIds": '["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]',
        },
    )
    assert not plan.of_type("aws:ec2/vpc:Vpc")
    group = plan.get("pgha-dev-net-db-subnets")
    assert group.inputs["subnetIds"] == ["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]
    assert plan.outputs["vpcId"] == "vpc-0123456789abcdef0"


def test_bring_your_own_vpc_in_one_az_fails() -> None:
    plan = run_program(
        "dev",
        {
            "vpcCidr": None,
            "vpcId": "vpc-0123456789abcdef0",
            "subnetIds": '["subnet-0123456789abcdef3", "subnet-0123456789abcdef6"]',
        },  # both map to AZ "a"
        check=False,
    )
    assert "at least 2 availability zones" in str(plan.error)


def test_proxy_requires_tls_and_iam_and_logs_in_as_application_logins_only(prod_plan: Plan) -> None:
    proxy = prod_plan.get("pgha-prod-proxy-rds")
    assert proxy.inputs["requireTls"] is True
    assert {a["iamAuth"] for a in proxy.inputs["auths"]} == {"REQUIRED"}
    auth_secrets = [a["secretArn"] for a in proxy.inputs["auths"]]
    assert sorted(auth_secrets) == sorted(prod_plan.outputs["appSecretArns"].values())
    assert prod_plan.outputs["masterSecretArn"] not in auth_secrets
    grant = json.loads(prod_plan.get("pgha-prod-proxy-read-secret").inputs["policy"])
    readable = next(s["Resource"] for s in grant["Statement"] if s["Action"] == "secretsmanager:GetSecretValue")
    assert sorted(readable) == sorted(auth_secrets)
    admit = prod_plan.get("pgha-prod-db-from-proxy")
    assert admit.inputs["referencedSecurityGroupId"].startswith("sg-")


def test_log_groups_exist_before_instances_with_retention(prod_plan: Plan) -> None:
    for instance in prod_plan.of_type(INSTANCE):
        ident = instance.inputs["identifier"]
        group = prod_plan.get(f"{ident}-postgresql-logs")
        assert group.inputs["name"] == f"/aws/rds/instance/{ident}/postgresql"
        assert group.inputs["retentionInDays"] > 0 and group.inputs["kmsKeyId"]
        assert group.urn in instance.dependencies


def test_outputs_have_the_shared_names(any_plan: Plan) -> None:
    required = {
        "writerEndpoint",
        "readerEndpoints",
        "port",
        "masterSecretArn",
        "kmsKeyArn",
        "vpcId",
        "subnetIds",
        "securityGroupId",
    }
    assert required <= set(any_plan.outputs)
    assert any_plan.outputs["port"] == 5432
    assert len(any_plan.outputs["readerEndpoints"]) == len([r for r in replicas(any_plan) if "-dr-" not in r.name])


def test_no_plaintext_secret_in_any_input(any_plan: Plan) -> None:
    secrets = [value for r in any_plan.resources for value in _secret_values(r.inputs)]
    for resource in any_plan.resources:
        for text in plain_strings(resource.inputs):
            for secret in secrets:
                assert str(secret) not in text, f"{resource.name} holds a secret in plaintext"
    for resource in any_plan.of_type(INSTANCE):
        assert "password" not in resource.inputs


def _secret_values(value: object) -> list[object]:
    if isinstance(value, Secret):
        return [value.value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _secret_values(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secret_values(v)]
    return []


def test_tags_reach_every_resource_through_the_provider(prod_plan: Plan) -> None:
    for provider in prod_plan.of_type("pulumi:providers:aws"):
        tags = json.loads(provider.inputs["defaultTags"])["tags"]
        assert tags["pgha:stack"] == "prod" and tags["owner"] == "platform"
    for resource in prod_plan.resources:
        if resource.custom and resource.type.startswith("aws:"):  # random passwords carry no tags
            assert resource.provider, f"{resource.name} uses the ambient default provider"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_program_runs_again_identically(stack: str, dev_plan: Plan, prod_plan: Plan) -> None:
    again = run_program(stack)
    before = {"dev": dev_plan, "prod": prod_plan}[stack]

    def by_urn(plan: Plan) -> list[dict]:
        return sorted((r.to_json() for r in plan.resources), key=lambda r: r["urn"])

    assert by_urn(again) == by_urn(before)


def test_an_impaired_az_moves_no_subnet_and_no_instance() -> None:
    """AZ state is not a filter: an AZ impaired during an incident must not shift the others (AZs are force-new)."""
    from pgha.ci.harness import zone_states

    def placement(plan: Plan) -> dict[str, str]:
        placed = plan.of_type("aws:ec2/subnet:Subnet") + plan.of_type(INSTANCE)
        return {r.name: r.inputs.get("availabilityZone") for r in placed if r.inputs.get("availabilityZone")}

    healthy = placement(run_program("dev"))
    with zone_states({"eu-west-1a": "impaired"}):
        during_incident = run_program("dev", check=False)
    assert during_incident.error is None, during_incident.error
    assert placement(during_incident) == healthy
    assert len(set(healthy.values())) == 3


def test_replicas_grow_like_the_primary(prod_plan: Plan) -> None:
    """Storage autoscaling is per instance: a replica without a ceiling stops replaying when its disk fills."""
    ceiling = primary(prod_plan).inputs["maxAllocatedStorage"]
    for name in ("pgha-prod-replica-1", "pgha-prod-replica-2", "pgha-prod-dr-replica"):
        assert prod_plan.get(name).inputs["maxAllocatedStorage"] == ceiling == 2000, name
        assert prod_plan.get(name).inputs["backupRetentionPeriod"] == 0, name


def test_final_snapshot_names_are_drawn_per_instance(prod_plan: Plan) -> None:
    """RDS refuses a final snapshot whose name exists: a name drawn for each instance (again when a change
    replaces it: a new key, database or master user) lets a second deletion through."""
    promoted = run_program("prod", {"drPromoted": "true"})
    for plan, name in ((prod_plan, "pgha-prod-primary"), (promoted, "pgha-prod-dr-replica")):
        db, suffix = plan.get(name), plan.get(f"{name}-final-snapshot-suffix")
        assert suffix.type == "random:index/randomId:RandomId"
        assert re.fullmatch(rf"{name}-final-[0-9a-f]{{8}}", db.inputs["finalSnapshotIdentifier"])
        assert db.property_dependencies["finalSnapshotIdentifier"] == [suffix.urn]
        assert suffix.inputs["keepers"]["kmsKeyId"] == db.inputs["kmsKeyId"]
    assert set(prod_plan.get("pgha-prod-primary-final-snapshot-suffix").inputs["keepers"]) == {
        "kmsKeyId",
        "dbName",
        "username",
    }


def test_login_secrets_are_replicated_to_the_dr_region_under_its_key(prod_plan: Plan) -> None:
    dr_key = key_arn(prod_plan, "pgha-prod-dr-key")
    for login in ("pgha-app", "pgha-exec"):
        secret = prod_plan.get(f"pgha-prod-logins-{login}")
        assert secret.inputs["replicas"] == [{"region": "eu-central-1", "kmsKeyId": dr_key}]
    for user, arn in prod_plan.outputs["drAppSecretArns"].items():
        primary_arn = prod_plan.outputs["appSecretArns"][user]
        assert arn == primary_arn.replace(":eu-west-1:", ":eu-central-1:")
    assert "replicas" not in run_program("dev").get("pgha-dev-logins-pgha-app").inputs


def test_patroni_credentials_are_replicated_with_the_backups() -> None:
    plan = run_program("prod", {"engine": "patroni"})
    dr_key = plan.get("pgha-prod-patroni-dr-backups-key")
    secret = plan.get("pgha-prod-patroni-credentials")
    assert secret.inputs["replicas"] == [
        {"region": "eu-central-1", "kmsKeyId": key_arn(plan, "pgha-prod-patroni-dr-backups-key")}
    ]
    assert dr_key.urn in secret.property_dependencies["replicas"]


def test_replicas_skip_the_final_snapshot_rds_refuses_for_them(prod_plan: Plan) -> None:
    reps = [r for r in prod_plan.of_type(INSTANCE) if r.name != "pgha-prod-primary"]
    assert {r.name for r in reps} == {"pgha-prod-replica-1", "pgha-prod-replica-2", "pgha-prod-dr-replica"}
    for replica in reps:
        assert replica.inputs["replicateSourceDb"]
        assert replica.inputs["skipFinalSnapshot"] is True, replica.name
        assert "finalSnapshotIdentifier" not in replica.inputs, replica.name
    assert prod_plan.get("pgha-prod-primary").inputs["skipFinalSnapshot"] is False
