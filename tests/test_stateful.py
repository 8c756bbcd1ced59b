"""Pulumi `protect` follows deletionProtection on what pgha/ci/stateful.py calls stateful (moved from
test_hardening.py)."""

from __future__ import annotations

import pytest

from pgha.ci.harness import Plan, run_program
from pgha.ci.stateful import is_stateful

INSTANCE = "aws:rds/instance:Instance"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


#: What the RDS path of a protected stack has and protects: its stateful types, and the log groups.
PROTECTED_TYPES = {
    INSTANCE,
    "aws:rds/parameterGroup:ParameterGroup",
    "aws:rds/subnetGroup:SubnetGroup",
    "aws:kms/key:Key",
    "aws:secretsmanager/secret:Secret",
    LOG_GROUP,
}


def test_prod_protects_every_stateful_resource(prod_plan: Plan) -> None:
    # stateful as pgha diff and preview-check count it (pgha/ci/stateful.py), so a type added there is covered here
    stateful = [r for r in prod_plan.resources if r.type in PROTECTED_TYPES or is_stateful(r.type)]
    assert {r.type for r in stateful} == PROTECTED_TYPES
    unprotected = [r.name for r in stateful if not r.protect]
    # the schema hook's own log group holds migration output, not the database's audit trail
    assert unprotected == ["pgha-prod-schema-logs"]
    assert prod_plan.get("pgha-prod-dr-replica").protect and prod_plan.get("pgha-prod-dr-key").protect
    # and nothing else: alarms, rules, roles stay freely replaceable
    assert not [r.name for r in prod_plan.resources if r.protect and r.type not in PROTECTED_TYPES]


def test_dev_protects_nothing(dev_plan: Plan) -> None:
    assert not [r.name for r in dev_plan.resources if r.protect]


@pytest.mark.parametrize("stack", ["prod"])
def test_protection_follows_deletion_protection(stack: str) -> None:
    plan = run_program(stack, {"deletionProtection": "false"})
    assert not [r.name for r in plan.resources if r.protect]


def test_prod_patroni_protects_every_stateful_resource_but_the_instances() -> None:
    """Volumes, their key, the credentials, node identities (ENIs) and buckets survive a forced `pulumi up`;
    instances are meant to be replaced one at a time (their data lives on the protected volumes), and a
    replaced instance replaces its volume attachment (instanceId is force-new), so that is not protected either."""
    plan = run_program("prod", {"engine": "patroni"})
    unprotected = {r.type for r in plan.resources if is_stateful(r.type) and not r.protect}
    assert unprotected == {"aws:ec2/instance:Instance", "aws:ec2/volumeAttachment:VolumeAttachment"}
    key = next(r for r in plan.resources if r.type == "aws:kms/key:Key" and "patroni" in r.name)
    assert key.protect
