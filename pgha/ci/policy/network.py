"""Security group rule (FSBP EC2.19: no unrestricted access to high-risk ports, 5432 among them),
mandatory: PostgreSQL ports (5432, and the Patroni NLB's reader port 5433) are never open to
0.0.0.0/0 or ::/0. Egress is not checked (nodes reach package mirrors on 80/443)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs

from pgha.ci.policy.common import MANDATORY, as_dict, as_list, resource_rule, whole_number

INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
GROUP = "aws:ec2/securityGroup:SecurityGroup"
POSTGRES_PORTS = (5432, 5433)
EVERYWHERE = {"0.0.0.0/0", "::/0"}


def _opens(rule: Mapping[str, Any], cidrs: list[str]) -> list[int]:
    """The PostgreSQL ports a rule opens to the whole internet."""
    if not EVERYWHERE & set(cidrs):
        return []
    protocol = str(rule.get("ipProtocol", rule.get("protocol", "tcp")))
    if protocol in ("-1", "all"):
        return list(POSTGRES_PORTS)
    low, high = whole_number(rule.get("fromPort")), whole_number(rule.get("toPort"))
    if low is None or high is None:
        return []
    return [port for port in POSTGRES_PORTS if low <= port <= high]


def no_public_postgres(args: ResourceValidationArgs) -> Iterable[str]:
    """Ingress rules, standalone or inline, that open a PostgreSQL port to the internet."""
    props = args.props
    if args.resource_type == INGRESS_RULE:
        candidates = [(props, [props.get("cidrIpv4"), props.get("cidrIpv6")])]
    elif args.resource_type == GROUP_RULE:
        if props.get("type") != "ingress":
            return
        candidates = [(props, [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))])]
    else:
        candidates = [
            (as_dict(r), [*as_list(as_dict(r).get("cidrBlocks")), *as_list(as_dict(r).get("ipv6CidrBlocks"))])
            for r in as_list(props.get("ingress"))
        ]
    for rule, cidrs in candidates:
        ports = _opens(rule, [c for c in cidrs if c])
        if ports:
            yield f"port(s) {', '.join(map(str, ports))} open to {', '.join(sorted(EVERYWHERE & set(cidrs)))}"


POLICIES = [
    resource_rule(
        "sg-no-public-postgres",
        "EC2.19",
        "PostgreSQL is never reachable from 0.0.0.0/0 or ::/0",
        MANDATORY,
        [INGRESS_RULE, GROUP_RULE, GROUP],
        no_public_postgres,
    ),
]
