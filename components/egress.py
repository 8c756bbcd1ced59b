"""How workloads in the stack's subnets reach AWS APIs over HTTPS, and the rules that let them.

A created VPC brings its own way out (interface endpoints, and a NAT when asked for). A
bring-your-own VPC is inspected at deploy time with data sources: the route tables of the
given subnets (a ``0.0.0.0/0`` route to a NAT gateway) and the VPC's interface endpoints for
the services needed (with private DNS, so the SDKs use them without configuration). What
exists is allowed; when neither exists the deployment fails naming what is missing, instead
of a function that hangs until its timeout. The schema hook uses this today; the Patroni
nodes can use the same two calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.access import allow_tcp

HTTPS = 443
ANYWHERE = "0.0.0.0/0"


class EgressError(ValueError):
    """A bring-your-own VPC offers no way to reach the AWS APIs the stack needs."""


@dataclass(frozen=True)
class HttpsEgress:
    """What the subnets offer for HTTPS to AWS APIs: interface endpoints (by security group) and/or a NAT."""

    #: Security groups of the interface endpoints for the needed services.
    endpoint_security_group_ids: tuple[pulumi.Input[str], ...] = ()
    #: Every subnet routes 0.0.0.0/0 through a NAT gateway.
    nat: bool = False
    #: Services without an endpoint: reached through the NAT.
    via_nat: tuple[str, ...] = ()


def _route_table_id(vpc_id: str, subnet_id: str, opts: pulumi.InvokeOptions) -> str | None:
    """The route table a subnet uses: its explicit association, else the VPC's main table."""
    for name, value in (("association.subnet-id", subnet_id), ("association.main", "true")):
        ids = aws.ec2.get_route_tables(vpc_id=vpc_id, filters=[{"name": name, "values": [value]}], opts=opts).ids
        if ids:
            return ids[0]
    return None


def _routes_to_nat(route_table_id: str | None, opts: pulumi.InvokeOptions) -> bool:
    if route_table_id is None:
        return False
    routes = aws.ec2.get_route_table(route_table_id=route_table_id, opts=opts).routes
    return any(route.cidr_block == ANYWHERE and route.nat_gateway_id for route in routes)


def _endpoint_security_groups(
    vpc_id: str, region: str, service: str, opts: pulumi.InvokeOptions
) -> tuple[str, ...] | None:
    """The security groups of the VPC's available interface endpoint for ``service`` with private DNS, if any."""
    try:
        endpoint = aws.ec2.get_vpc_endpoint(
            vpc_id=vpc_id, service_name=f"com.amazonaws.{region}.{service}", state="available", opts=opts
        )
    except Exception as err:  # the provider's "not found" is an invoke error; anything else is real
        if "no matching" in str(err).lower():
            return None
        raise
    if not endpoint.private_dns_enabled:
        return None
    return tuple(endpoint.security_group_ids)


def inspect_vpc_egress(
    vpc_id: str,
    subnet_ids: Sequence[str],
    region: str,
    services: Sequence[str],
    parent: pulumi.Resource | None = None,
) -> HttpsEgress:
    """Look up what a bring-your-own VPC offers the ``subnet_ids`` for HTTPS to ``services``.

    Raises :class:`EgressError` naming the subnets without a NAT route and the services
    without an endpoint when some service is reachable neither way.
    """
    opts = pulumi.InvokeOptions(parent=parent)
    no_nat = [sid for sid in subnet_ids if not _routes_to_nat(_route_table_id(vpc_id, sid, opts), opts)]
    groups: list[str] = []
    missing = []
    for service in services:
        found = _endpoint_security_groups(vpc_id, region, service, opts)
        if found is None:
            missing.append(service)
        else:
            groups += [g for g in found if g not in groups]
    if missing and no_nat:
        raise EgressError(
            f"pgha:vpcId = {vpc_id!r}: pgha:subnetIds cannot reach AWS {', '.join(missing)} (the schema hook and "
            "the nodes read their secrets there): no available interface endpoint with private DNS for "
            f"{', '.join(f'com.amazonaws.{region}.{s}' for s in missing)}, and no 0.0.0.0/0 route to a NAT gateway "
            f"in the route table of {', '.join(no_nat)}. Add the endpoint(s) or a NAT route, "
            "or set pgha:schemaRunner off"
        )
    return HttpsEgress(endpoint_security_group_ids=tuple(groups), nat=not no_nat, via_nat=tuple(missing))


def allow_https_egress(
    name: str, security_group_id: pulumi.Input[str], egress: HttpsEgress, parent: pulumi.Resource
) -> list[pulumi.Resource]:
    """HTTPS out of ``security_group_id`` to what ``egress`` offers: the endpoints' groups, else anywhere via NAT.

    Returns the rules, so that whatever runs in the group (an invocation) can depend on them.
    """
    rules: list[pulumi.Resource] = [
        allow_tcp(
            f"{name}-to-endpoints-{index}",
            security_group_id,
            HTTPS,
            "HTTPS to the VPC endpoints",
            parent,
            source_security_group_id=group,
            egress=True,
        )
        for index, group in enumerate(egress.endpoint_security_group_ids)
    ]
    if egress.via_nat or not egress.endpoint_security_group_ids:
        if not egress.nat:
            raise EgressError(f"{name}: no endpoint and no NAT to reach AWS APIs through")
        rules.append(
            allow_tcp(
                f"{name}-to-https",
                security_group_id,
                HTTPS,
                "HTTPS to AWS APIs through the NAT",
                parent,
                cidr=ANYWHERE,
                egress=True,
            )
        )
    return rules
