"""The policy pack: the committed stacks pass, every rule fires on a resource made to break it, and
the pack that `pulumi preview --policy-pack policy` loads serves the same rules over gRPC."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

from pgha.ci.harness import PROJECT_DIR, Plan, RegisteredResource, run_program
from pgha.ci.policy import ALL_POLICIES, POLICY_MODULES, evaluate, evaluate_plan, plain_inputs


@pytest.fixture(scope="module")
def patroni_plan() -> Plan:
    return run_program("prod", {"engine": "patroni"})


@pytest.fixture(scope="module")
def plans(dev_plan: Plan, prod_plan: Plan, patroni_plan: Plan) -> dict[str, Plan]:
    return {"dev": dev_plan, "prod": prod_plan, "patroni": patroni_plan}


@pytest.mark.parametrize("stack", ["dev", "prod", "patroni"])
def test_the_committed_stacks_break_no_mandatory_rule(plans: dict[str, Plan], stack: str) -> None:
    violations = evaluate_plan(plans[stack])
    assert [v for v in violations if v.mandatory] == []
    if stack != "dev":
        assert violations == []


def test_dev_is_told_about_short_backups_and_missing_deletion_protection(dev_plan: Plan) -> None:
    found = {(v.policy, v.resource, v.level) for v in evaluate_plan(dev_plan)}
    assert found == {
        ("rds-backup-retention-nonprod", "pgha-dev-primary", "advisory"),
        ("rds-deletion-protection-nonprod", "pgha-dev-primary", "advisory"),
        ("rds-deletion-protection-nonprod", "pgha-dev-replica-1", "advisory"),
    }


def _set(inputs: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    target: Any = inputs
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def _deny_to_allow(inputs: dict[str, Any]) -> None:
    inputs["policy"] = inputs["policy"].replace('"Effect": "Deny"', '"Effect": "Allow"')


def _force_ssl_off(inputs: dict[str, Any]) -> None:
    for parameter in inputs["parameters"]:
        if parameter["name"] == "rds.force_ssl":
            parameter["value"] = "0"


#: rule -> (plan, resource that breaks it, violation reported on, how to break it (None: it already does))
BREAKERS: dict[str, tuple[str, str, str, Callable[[dict[str, Any]], None] | tuple[str, Any] | None]] = {
    "rds-encrypted-cmk": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("storageEncrypted", False)),
    "rds-not-public": ("prod", "pgha-prod-replica-1", "pgha-prod-replica-1", ("publiclyAccessible", True)),
    "rds-multi-az-prod": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("multiAz", False)),
    "rds-backup-retention": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("backupRetentionPeriod", 3)),
    "rds-backup-retention-nonprod": ("dev", "pgha-dev-primary", "pgha-dev-primary", None),
    "rds-deletion-protection": ("prod", "pgha-prod-dr-replica", "pgha-prod-dr-replica", ("deletionProtection", False)),
    "rds-deletion-protection-nonprod": ("dev", "pgha-dev-replica-1", "pgha-dev-replica-1", None),
    "rds-iam-auth": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("iamDatabaseAuthenticationEnabled", False)),
    "rds-log-exports": (
        "prod",
        "pgha-prod-primary",
        "pgha-prod-primary",
        ("enabledCloudwatchLogsExports", ["postgresql"]),
    ),
    "rds-enhanced-monitoring": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("monitoringInterval", 0)),
    "rds-auto-minor-upgrade": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("autoMinorVersionUpgrade", False)),
    "rds-copy-tags-to-snapshots": ("prod", "pgha-prod-primary", "pgha-prod-primary", ("copyTagsToSnapshot", False)),
    "rds-force-ssl": ("prod", "pgha-prod-pg17", "pgha-prod-pg17", _force_ssl_off),
    "ec2-imdsv2": (
        "patroni",
        "pgha-prod-patroni-1-lt",
        "pgha-prod-patroni-1-lt",
        ("metadataOptions.httpTokens", "optional"),
    ),
    "ec2-encrypted-volumes": ("patroni", "pgha-prod-patroni-2-data", "pgha-prod-patroni-2-data", ("encrypted", False)),
    "ec2-no-public-ip": (
        "patroni",
        "pgha-prod-patroni-3-lt",
        "pgha-prod-patroni-3-lt",
        ("networkInterfaces.0.associatePublicIpAddress", "true"),
    ),
    "ec2-subnet-no-auto-public-ip": (
        "prod",
        "pgha-prod-net-private-0",
        "pgha-prod-net-private-0",
        ("mapPublicIpOnLaunch", True),
    ),
    # allowedCidrs refuses 0.0.0.0/0, so the rule is broken by hand
    "sg-no-public-postgres": (
        "prod",
        "pgha-prod-net-db-from-10-40-0-0-16",
        "pgha-prod-net-db-from-10-40-0-0-16",
        ("cidrIpv4", "0.0.0.0/0"),
    ),
    "kms-rotation": ("prod", "pgha-prod-dr-key", "pgha-prod-dr-key", ("enableKeyRotation", False)),
    "s3-tls-only": ("patroni", "pgha-prod-patroni-backups-tls-only", "pgha-prod-patroni-backups", _deny_to_allow),
    "s3-public-access-block": (
        "patroni",
        "pgha-prod-patroni-backups-private",
        "pgha-prod-patroni-backups",
        ("restrictPublicBuckets", False),
    ),
    "s3-versioning": (
        "patroni",
        "pgha-prod-patroni-backups-versioning",
        "pgha-prod-patroni-backups",
        ("versioningConfiguration.status", "Suspended"),
    ),
    "s3-kms-encryption": (
        "patroni",
        "pgha-prod-patroni-backups-sse",
        "pgha-prod-patroni-backups",
        ("rules.0.applyServerSideEncryptionByDefault.sseAlgorithm", "AES256"),
    ),
    # Pulumi.prod.yaml has a drRegion, which engine patroni now uses for the backup bucket
    "s3-cross-region-replication": (
        "patroni",
        "pgha-prod-patroni-backups-replication",
        "pgha-prod-patroni-backups",
        ("rules.0.status", "Disabled"),
    ),
}


def _broken(plan: Plan, name: str, how: Callable | tuple | None) -> list[RegisteredResource]:
    resources = copy.deepcopy(plan.resources)
    target = next(r for r in resources if r.name == name)
    if callable(how):
        how(target.inputs)
    elif how is not None:
        _set(target.inputs, *how)
    return resources


@pytest.mark.parametrize("rule", sorted(BREAKERS))
def test_every_rule_fires_on_a_resource_made_to_break_it(plans: dict[str, Plan], rule: str) -> None:
    stack, name, reported_on, how = BREAKERS[rule]
    policies = [p for p in ALL_POLICIES if p.name == rule]
    fired = [v for v in evaluate(_broken(plans[stack], name, how), policies) if v.resource == reported_on]
    assert len(fired) == 1, fired
    assert fired[0].mandatory == (policies[0].enforcement_level.value == "mandatory")
    if how is not None:  # the same resource, unbroken, passes
        assert [v for v in evaluate(plans[stack].resources, policies) if v.resource == reported_on] == []


def test_every_rule_has_a_breaker() -> None:
    """Rules of the modules this file covers; a module added to POLICY_MODULES brings its own tests."""
    covered = (
        "pgha.ci.policy.rds",
        "pgha.ci.policy.ec2",
        "pgha.ci.policy.s3",
        "pgha.ci.policy.network",
        "pgha.ci.policy.kms",
    )
    assert set(covered) <= set(POLICY_MODULES)
    mine = {p.name for module in covered for p in import_module(module).POLICIES}
    assert mine == set(BREAKERS), "add a BREAKERS entry for each new rule"


def test_a_rule_is_callable_with_hand_built_args() -> None:
    rule = next(p for p in ALL_POLICIES if p.name == "rds-multi-az-prod")
    reported: list[str] = []
    args = ResourceValidationArgs(
        "aws:rds/instance:Instance",
        {"multiAz": False, "tags": {"environment": "prod"}},
        "urn:pulumi:prod::pgha::aws:rds/instance:Instance::db",
        "db",
        None,
        None,
    )
    rule.validate(args, lambda message, urn=None: reported.append(message))
    assert reported == ["multiAz is not true on a production primary: an AZ failure takes the database down"]
    args.props["tags"] = {"environment": "staging"}
    reported.clear()
    rule.validate(args, lambda message, urn=None: reported.append(message))
    assert reported == []


def test_cli_exits_1_on_a_mandatory_violation_and_0_on_advisory_ones() -> None:
    def policy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pgha", "policy", *args],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=120,
        )

    broken = policy("--stack", "prod", "--set", "multiAz=false")
    assert broken.returncode == 1, broken.stderr
    assert "MANDATORY rds-multi-az-prod  pgha-prod-primary  multiAz is not true" in broken.stdout
    # the documented DR promotion leaves a production stack that passes its own policy
    promoted = policy("--stack", "prod", "--set", "drPromoted=true")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    dev = policy("--stack", "dev")
    assert dev.returncode == 0, dev.stderr
    assert "ADVISORY  rds-backup-retention-nonprod  pgha-dev-primary" in dev.stdout
    assert policy("--stack", "staging").returncode == 2


@pytest.fixture(scope="module")
def engine() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The policy pack as `pulumi preview --policy-pack policy` runs it: its analyzer, over gRPC on loopback."""
    pack = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "policy" / "__main__.py")], stdout=subprocess.PIPE, text=True, cwd="/"
    )
    try:
        yield analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{pack.stdout.readline().strip()}"))
    finally:
        pack.terminate()
        pack.wait(10)


def _struct(inputs: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(plain_inputs(inputs))
    return struct


def _engine_verdicts(
    engine: analyzer_pb2_grpc.AnalyzerStub, resources: list[RegisteredResource], names: set[str]
) -> set[tuple[str, str]]:
    """(rule, resource) for every resource rule the engine's analyzer reports on ``names``."""
    providers = {r.urn: r for r in resources if r.type.startswith("pulumi:providers:")}
    found = set()
    for r in resources:
        if r.name not in names:
            continue
        provider = providers.get(r.provider.rsplit("::", 1)[0]) if r.provider else None
        request = analyzer_pb2.AnalyzeRequest(type=r.type, properties=_struct(r.inputs), urn=r.urn, name=r.name)
        if provider is not None:
            request.provider.CopyFrom(
                analyzer_pb2.AnalyzerProviderResource(
                    type=provider.type, properties=_struct(provider.inputs), urn=provider.urn, name=provider.name
                )
            )
        found |= {(d.policyName, r.name) for d in engine.Analyze(request, timeout=30).diagnostics}
    return found


@pytest.mark.parametrize("stack", ["dev", "prod", "patroni"])
def test_the_engine_judges_every_committed_resource_as_the_offline_run(
    engine: analyzer_pb2_grpc.AnalyzerStub, plans: dict[str, Plan], stack: str
) -> None:
    """The engine sends numbers as floats and objects as pulumi-policy proxies: the rules must judge what a
    preview sends as they judge the offline run (they once failed every compliant prod primary in a preview)."""
    resources = plans[stack].resources
    resource_rules = {p.name for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)}
    offline = {(v.policy, v.resource) for v in evaluate(resources) if v.policy in resource_rules}
    assert _engine_verdicts(engine, resources, {r.name for r in resources}) == offline


@pytest.mark.parametrize("rule", sorted(r for r in BREAKERS if not r.startswith("s3-")))  # s3-*: stack rules
def test_the_engine_fires_every_resource_rule_on_the_resource_made_to_break_it(
    engine: analyzer_pb2_grpc.AnalyzerStub, plans: dict[str, Plan], rule: str
) -> None:
    stack, name, reported_on, how = BREAKERS[rule]
    assert (rule, reported_on) in _engine_verdicts(engine, _broken(plans[stack], name, how), {name})


def test_the_policy_pack_serves_the_same_rules_to_the_engine() -> None:
    """policy/__main__.py builds the PolicyPack, whose analyzer the CLI talks to over gRPC on loopback."""
    pack = subprocess.Popen(
        [sys.executable, str(PROJECT_DIR / "policy" / "__main__.py")], stdout=subprocess.PIPE, text=True, cwd="/"
    )
    try:
        port = pack.stdout.readline().strip()
        stub = analyzer_pb2_grpc.AnalyzerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
        assert info.name == "pgha-aws-fsbp"
        assert sorted(p.name for p in info.policies) == sorted(p.name for p in ALL_POLICIES)
        props = struct_pb2.Struct()
        props.update({"enableKeyRotation": False})
        response = stub.Analyze(
            analyzer_pb2.AnalyzeRequest(
                type="aws:kms/key:Key", properties=props, urn="urn:pulumi:dev::pgha::aws:kms/key:Key::k", name="k"
            ),
            timeout=30,
        )
        assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [
            ("kms-rotation", analyzer_pb2.MANDATORY)
        ]
    finally:
        pack.terminate()
        pack.wait(10)


def test_an_access_log_target_passes_with_sse_s3_and_only_with_it(plans: dict[str, Plan]) -> None:
    """S3 delivers server access logs only to SSE-S3 buckets: the log bucket is exempt from KMS, not from encryption."""
    rule = [p for p in ALL_POLICIES if p.name == "s3-kms-encryption"]
    assert [v.resource for v in evaluate(plans["patroni"].resources, rule)] == []
    broken = _broken(
        plans["patroni"],
        "pgha-prod-patroni-backup-logs-sse",
        ("rules.0.applyServerSideEncryptionByDefault.sseAlgorithm", "none"),
    )
    assert [v.resource for v in evaluate(broken, rule)] == ["pgha-prod-patroni-backup-logs"]


def test_without_a_dr_region_only_the_backup_bucket_is_told_to_replicate() -> None:
    """S3.7 is advisory (a DR region is the stack's choice) and skips the access-log bucket: S3
    delivers server access logs only within a region, so that bucket is the region's audit trail."""
    plan = run_program("dev", {"engine": "patroni"})
    fired = [(v.resource, v.level) for v in evaluate_plan(plan) if v.policy == "s3-cross-region-replication"]
    assert fired == [("pgha-dev-patroni-backups", "advisory")]
    assert any(r.name == "pgha-dev-patroni-backup-logs" for r in plan.of_type("aws:s3/bucket:Bucket"))
