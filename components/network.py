"""Network for the database: a new private VPC over three AZs, or the user's own."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

POSTGRES_PORT = 5432
AZ_COUNT = 3


@dataclass(frozen=True)
class NetworkArgs:
    """Where the database lives and who may reach it.

    Secure defaults: private subnets only (no internet gateway, no NAT), no ingress
    until ``allowed_cidrs`` or ``allowed_security_group_ids`` name a source.
    """

    vpc_cidr: str | None = "10.40.0.0/16"
    vpc_id: str | None = None
    subnet_ids: Sequence[str] = ()
    allowed_cidrs: Sequence[str] = ()
    allowed_security_group_ids: Sequence[str] = ()
    #: AWS services reached through interface endpoints from inside a created VPC.
    interface_endpoints: Sequence[str] = ("secretsmanager",)


def private_subnet_cidrs(vpc_cidr: str, count: int = AZ_COUNT) -> list[str]:
    """Split the VPC CIDR into ``count`` equal private subnets (one per AZ), leaving room to grow."""
    network = ipaddress.ip_network(vpc_cidr)
    return [str(subnet) for subnet in list(network.subnets(prefixlen_diff=2))[:count]]


def _require_two_azs(azs: list[str]) -> list[str]:
    if len(set(azs)) < 2:
        raise ValueError(f"pgha:subnetIds must span at least 2 availability zones, got {sorted(set(azs))}")
    return azs


class Network(pulumi.ComponentResource):
    """VPC, DB subnet group and the database security group."""

    vpc_id: pulumi.Output[str]
    vpc_cidr: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]
    azs: pulumi.Output[list[str]]
    db_subnet_group_name: pulumi.Output[str]
    db_security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)

        if args.vpc_id:
            subnets = [aws.ec2.get_subnet_output(id=sid, opts=invoke) for sid in args.subnet_ids]
            self.vpc_id = pulumi.Output.from_input(args.vpc_id)
            self.vpc_cidr = aws.ec2.get_vpc_output(id=args.vpc_id, opts=invoke).cidr_block
            self.subnet_ids = pulumi.Output.from_input(list(args.subnet_ids))
            self.azs = pulumi.Output.all(*[s.availability_zone for s in subnets]).apply(_require_two_azs)
        else:
            assert args.vpc_cidr, "NetworkArgs needs vpc_cidr or vpc_id"
            self._create_vpc(name, args, child, invoke)

        self.db_subnet_group_name = aws.rds.SubnetGroup(
            f"{name}-db-subnets",
            description="pgha database subnets (private, >= 2 AZs)",
            subnet_ids=self.subnet_ids,
            opts=child,
        ).name

        db_sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            description="pgha database: PostgreSQL from allowed sources only",
            vpc_id=self.vpc_id,
            opts=child,
        )
        self.db_security_group_id = db_sg.id
        for index, cidr in enumerate(args.allowed_cidrs):
            self._ingress(f"{name}-db-from-cidr-{index}", db_sg.id, f"PostgreSQL from {cidr}", cidr_ipv4=cidr)
        for sg_id in args.allowed_security_group_ids:
            self._ingress(f"{name}-db-from-{sg_id}", db_sg.id, f"PostgreSQL from {sg_id}", source_sg=sg_id)

        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "subnetIds": self.subnet_ids,
                "azs": self.azs,
                "dbSubnetGroupName": self.db_subnet_group_name,
                "dbSecurityGroupId": self.db_security_group_id,
            }
        )

    def _create_vpc(
        self, name: str, args: NetworkArgs, child: pulumi.ResourceOptions, invoke: pulumi.InvokeOutputOptions
    ) -> None:
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        zones = aws.get_availability_zones_output(
            state="available", filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}], opts=invoke
        ).names
        route_table = aws.ec2.RouteTable(
            f"{name}-private-rt", vpc_id=vpc.id, tags={"Name": f"{name}-private"}, opts=child
        )
        subnet_ids = []
        for index, cidr in enumerate(private_subnet_cidrs(str(args.vpc_cidr))):
            subnet = aws.ec2.Subnet(
                f"{name}-private-{index}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=zones[index],
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-private-{index}", "pgha:tier": "database"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rt", subnet_id=subnet.id, route_table_id=route_table.id, opts=child
            )
            subnet_ids.append(subnet.id)

        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.subnet_ids = pulumi.Output.all(*subnet_ids)
        self.azs = zones.apply(lambda names: list(names[:AZ_COUNT]))

        if args.interface_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints-sg",
                description="pgha VPC endpoints: HTTPS from inside the VPC",
                vpc_id=vpc.id,
                opts=child,
            )
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-endpoints-https",
                security_group_id=endpoint_sg.id,
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_ipv4=vpc.cidr_block,
                description="HTTPS from the VPC",
                opts=child,
            )
            region = aws.get_region_output(opts=invoke).region
            for service in args.interface_endpoints:
                aws.ec2.VpcEndpoint(
                    f"{name}-{service}-endpoint",
                    vpc_id=vpc.id,
                    service_name=region.apply(lambda r, s=service: f"com.amazonaws.{r}.{s}"),
                    vpc_endpoint_type="Interface",
                    private_dns_enabled=True,
                    subnet_ids=self.subnet_ids,
                    security_group_ids=[endpoint_sg.id],
                    opts=child,
                )

    def _ingress(
        self,
        name: str,
        security_group_id: pulumi.Input[str],
        description: str,
        *,
        cidr_ipv4: str | None = None,
        source_sg: pulumi.Input[str] | None = None,
    ) -> None:
        aws.vpc.SecurityGroupIngressRule(
            name,
            security_group_id=security_group_id,
            ip_protocol="tcp",
            from_port=POSTGRES_PORT,
            to_port=POSTGRES_PORT,
            cidr_ipv4=cidr_ipv4,
            referenced_security_group_id=source_sg,
            description=description,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def admit(self, name: str, source_security_group_id: pulumi.Input[str], description: str) -> None:
        """Let members of another security group (the schema hook, the proxy) reach PostgreSQL."""
        self._ingress(name, self.db_security_group_id, description, source_sg=source_security_group_id)
