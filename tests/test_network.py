"""components/network.py: flow logs on every created VPC and closed default security groups (FSBP EC2.6,
EC2.2; moved from test_hardening.py)."""

from __future__ import annotations

from pgha.ci.harness import Plan, _fake_id


def test_every_created_vpc_has_flow_logs_to_an_encrypted_log_group(prod_plan: Plan) -> None:
    vpcs = prod_plan.of_type("aws:ec2/vpc:Vpc")
    assert {v.name for v in vpcs} == {"pgha-prod-net-vpc", "pgha-prod-dr-net-vpc"}
    for vpc in vpcs:
        net = vpc.name.removesuffix("-vpc")
        flow = prod_plan.get(f"{net}-flow-log")
        assert flow.inputs["vpcId"] == f"vpc-{_fake_id(vpc.name)}"
        assert flow.inputs["trafficType"] == "ALL"
        assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
        group = prod_plan.get(f"{net}-flow-logs")
        assert flow.inputs["logDestination"].endswith(group.name) and group.urn in flow.dependencies
        assert group.inputs["retentionInDays"] >= 365
        key = prod_plan.get(f"{net}-key")
        region = prod_plan.region_of(key)
        assert group.inputs["kmsKeyId"] == f"arn:aws:kms:{region}:123456789012:key/{_fake_id(key.name)}"
        assert flow.provider == vpc.provider, "flow log in the VPC's own region"
        role = prod_plan.get(f"{net}-flow-logs-role")
        assert "vpc-flow-logs.amazonaws.com" in role.inputs["assumeRolePolicy"]


def test_default_security_group_of_every_created_vpc_has_no_rules(prod_plan: Plan) -> None:
    defaults = prod_plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    vpcs = {f"vpc-{_fake_id(v.name)}" for v in prod_plan.of_type("aws:ec2/vpc:Vpc")}
    assert {d.inputs["vpcId"] for d in defaults} == vpcs
    for group in defaults:
        assert not group.inputs.get("ingress") and not group.inputs.get("egress")
