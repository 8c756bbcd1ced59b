"""components/egress.py: the schema hook's way out to AWS APIs, in a created VPC and in a bring-your-own one
(moved from test_hardening.py)."""

from __future__ import annotations

from pgha.ci.harness import (
    BYO_ENDPOINT_SG,
    BYO_VPC_WITH_ENDPOINT,
    BYO_VPC_WITH_NAT,
    BYO_VPC_WITHOUT_EGRESS,
    Plan,
    RegisteredResource,
    run_program,
)

INSTANCE = "aws:rds/instance:Instance"
BYO_SUBNETS = '["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]'


def byo(vpc_id: str, **overrides: str) -> Plan:
    """The dev stack in a bring-your-own VPC the mocks describe (see pgha/ci/harness.py)."""
    return run_program("dev", {"vpcCidr": None, "vpcId": vpc_id, "subnetIds": BYO_SUBNETS, **overrides}, check=False)


def egress_rules(plan: Plan, prefix: str) -> list[RegisteredResource]:
    return [
        r for r in plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule") if r.name.startswith(prefix)
    ]


def test_invocation_depends_on_every_rule_and_endpoint_the_hook_needs(dev_plan: Plan) -> None:
    invocation = dev_plan.get("pgha-dev-schema-apply")
    needed = [
        "pgha-dev-net-secretsmanager-endpoint",
        "pgha-dev-net-s3-endpoint",  # Network.egress
        "pgha-dev-schema-to-5432",
        "pgha-dev-schema-https-to-endpoints-0",  # out of the hook
        "pgha-dev-db-from-schema-hook",  # into the database
        "pgha-dev-schema-fn",
    ]
    for name in needed:
        assert dev_plan.get(name).urn in invocation.dependencies, name


def test_byo_vpc_with_a_nat_gets_https_out_through_it() -> None:
    plan = byo(BYO_VPC_WITH_NAT)
    assert plan.error is None
    https = [r for r in egress_rules(plan, "pgha-dev-schema-https") if r.inputs["fromPort"] == 443]
    assert [(r.inputs.get("cidrIpv4"), r.inputs.get("referencedSecurityGroupId")) for r in https] == [
        ("0.0.0.0/0", None)
    ]
    assert https[0].urn in plan.get("pgha-dev-schema-apply").dependencies


def test_byo_vpc_with_an_endpoint_gets_https_to_the_endpoint_only() -> None:
    plan = byo(BYO_VPC_WITH_ENDPOINT)
    assert plan.error is None
    https = egress_rules(plan, "pgha-dev-schema-https")
    assert [(r.inputs.get("cidrIpv4"), r.inputs.get("referencedSecurityGroupId")) for r in https] == [
        (None, BYO_ENDPOINT_SG)
    ]


def test_byo_vpc_without_nat_or_endpoint_fails_naming_what_is_missing() -> None:
    plan = byo(BYO_VPC_WITHOUT_EGRESS)
    message = str(plan.error)
    assert type(plan.error).__name__ == "EgressError"
    assert BYO_VPC_WITHOUT_EGRESS in message
    assert "com.amazonaws.eu-west-1.secretsmanager" in message and "NAT" in message
    assert "subnet-0123456789abcdef1" in message and "subnet-0123456789abcdef2" in message
    assert not plan.of_type(INSTANCE), "nothing is declared once the way out is known to be missing"


def test_byo_vpc_without_egress_is_fine_when_nothing_needs_aws_apis() -> None:
    plan = byo(BYO_VPC_WITHOUT_EGRESS, schemaRunner="off")
    assert plan.error is None
    assert not plan.of_type("aws:lambda/function:Function")
