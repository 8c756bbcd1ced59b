"""Network for the database: a new private VPC over three AZs, or the user's own."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.access import allow_tcp, inline_policy, service_role
from components.egress import HttpsEgress, inspect_vpc_egress
from components.kms import create_cmk

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
    #: AWS services reached from inside: a created VPC gets interface endpoints for them; a
    #: bring-your-own VPC is inspected for an endpoint or a NAT route (the deployment fails with neither).
    interface_endpoints: Sequence[str] = ("secretsmanager",)
    #: A NAT gateway (in a small public subnet) for instances that install packages at boot.
    internet_egress: bool = False
    #: The region, for the service names a bring-your-own VPC's endpoints are looked up by.
    region: str | None = None
    #: Flow logs of a created VPC (FSBP EC2.6), kept this long in a KMS-encrypted log group.
    flow_log_retention_days: int = 365
    #: Pulumi ``protect`` on the stateful parts (DB subnet group, flow-log key and log group).
    protect: bool = False


def private_subnet_cidrs(vpc_cidr: str, count: int = AZ_COUNT) -> list[str]:
    """Split the VPC CIDR into quarters: one private subnet per AZ, the last quarter kept for public use."""
    network = ipaddress.ip_network(vpc_cidr)
    return [str(subnet) for subnet in list(network.subnets(prefixlen_diff=2))[:count]]


def public_subnet_cidr(vpc_cidr: str) -> str:
    """The small public subnet (for the NAT gateway) at the start of the VPC's last quarter."""
    last_quarter = list(ipaddress.ip_network(vpc_cidr).subnets(prefixlen_diff=2))[-1]
    return str(next(last_quarter.subnets(new_prefix=min(last_quarter.prefixlen + 4, 28))))


def region_zones(invoke: pulumi.InvokeOutputOptions) -> pulumi.Output[list[str]]:
    """The region's AZs that need no opt-in, by name: the first :data:`AZ_COUNT` hold the created subnets.

    Deliberately not filtered by state: an impaired or unavailable AZ would drop out of the list, every
    later AZ would move up one place, and the subnets, replicas and Patroni volumes and interfaces placed
    by position (their AZ is force-new) would be replaced during the incident. The names are sorted, so
    the same region always gives the same list (a stack created while an AZ is impaired still uses it).
    """
    return aws.get_availability_zones_output(
        filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}], opts=invoke
    ).names.apply(sorted)


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
    #: What gives the subnets their way out (NAT route, VPC endpoints): whatever talks to AWS or the
    #: internet at boot (EC2 nodes, the schema hook's invocation) depends on these, not on timing.
    #: Empty for a bring-your-own VPC, whose egress exists before this stack.
    egress: list[pulumi.Resource]
    #: How the subnets reach AWS APIs over HTTPS (for :func:`components.egress.allow_https_egress`).
    https_egress: HttpsEgress

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self.egress = []
        self.https_egress = HttpsEgress()

        if args.vpc_id:
            if args.interface_endpoints:
                # before anything is registered: a VPC without a way out fails the deployment here
                self.https_egress = inspect_vpc_egress(
                    args.vpc_id,
                    args.subnet_ids,
                    args.region or aws.get_region(opts=pulumi.InvokeOptions(parent=self)).region,
                    args.interface_endpoints,
                    self,
                )
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
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        ).name

        db_sg = aws.ec2.SecurityGroup(
            f"{name}-db-sg",
            description="pgha database: PostgreSQL from allowed sources only",
            vpc_id=self.vpc_id,
            opts=child,
        )
        self.db_security_group_id = db_sg.id
        admit_clients(f"{name}-db", db_sg.id, POSTGRES_PORT, args.allowed_cidrs, args.allowed_security_group_ids, self)

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
        # FSBP EC2.2: the default security group admits and emits nothing (this resource strips its rules)
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=vpc.id, tags={"Name": f"{name}-default-unused"}, opts=child
        )
        self._flow_logs(name, vpc, args)
        zones = region_zones(invoke)
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

        if args.internet_egress:
            self.egress.append(self._nat(name, vpc, zones, route_table, str(args.vpc_cidr), child))
        self.vpc_id = vpc.id
        self.vpc_cidr = vpc.cidr_block
        self.subnet_ids = pulumi.Output.all(*subnet_ids)
        self.azs = zones.apply(lambda names: list(names[:AZ_COUNT]))

        region = aws.get_region_output(opts=invoke).region
        # S3 (backups, WAL archive) through a free gateway endpoint: no NAT in that path
        s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3-endpoint",
            vpc_id=vpc.id,
            service_name=region.apply(lambda r: f"com.amazonaws.{r}.s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[route_table.id],
            opts=child,
        )
        self.egress.append(s3_endpoint)
        self.https_egress = HttpsEgress(nat=args.internet_egress)
        if args.interface_endpoints:
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoints-sg",
                description="pgha VPC endpoints: HTTPS from inside the VPC",
                vpc_id=vpc.id,
                opts=child,
            )
            allow_tcp(f"{name}-endpoints-https", endpoint_sg.id, 443, "HTTPS from the VPC", self, cidr=vpc.cidr_block)
            self.https_egress = HttpsEgress(endpoint_security_group_ids=(endpoint_sg.id,), nat=args.internet_egress)
            for service in args.interface_endpoints:
                self.egress.append(
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
                )

    def _flow_logs(self, name: str, vpc: aws.ec2.Vpc, args: NetworkArgs) -> None:
        """Every flow of the VPC (FSBP EC2.6) to a log group encrypted with its own key, kept for a year."""
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        key = create_cmk(name, "pgha VPC flow logs", region, self, protect=args.protect)
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=f"/pgha/{name}/flow-logs",
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=key.arn,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        role = service_role(f"{name}-flow-logs-role", "vpc-flow-logs.amazonaws.com", self)
        inline_policy(
            f"{name}-flow-logs-write",
            role,
            [
                {
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogGroups",
                        "logs:DescribeLogStreams",
                    ],
                    "Resource": [group.arn, pulumi.Output.concat(group.arn, ":*")],
                }
            ],
            self,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            # CreateFlowLogs checks that the service can use the role to deliver
            opts=pulumi.ResourceOptions(parent=self, depends_on=role.ready),
        )

    def _nat(
        self,
        name: str,
        vpc: aws.ec2.Vpc,
        zones: pulumi.Output[list[str]],
        private_route_table: aws.ec2.RouteTable,
        vpc_cidr: str,
        child: pulumi.ResourceOptions,
    ) -> aws.ec2.Route:
        """One NAT gateway for outbound-only internet from the private subnets (package installs); its route."""
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        public = aws.ec2.Subnet(
            f"{name}-public-0",
            vpc_id=vpc.id,
            cidr_block=public_subnet_cidr(vpc_cidr),
            availability_zone=zones[0],
            map_public_ip_on_launch=False,
            tags={"Name": f"{name}-public-0", "pgha:tier": "nat"},
            opts=child,
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            tags={"Name": f"{name}-public"},
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-public-0-rt", subnet_id=public.id, route_table_id=public_rt.id, opts=child
        )
        eip = aws.ec2.Eip(f"{name}-nat-ip", domain="vpc", opts=child)
        nat = aws.ec2.NatGateway(
            f"{name}-nat",
            allocation_id=eip.id,
            subnet_id=public.id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[gateway]),
        )
        return aws.ec2.Route(
            f"{name}-private-default",
            route_table_id=private_route_table.id,
            destination_cidr_block="0.0.0.0/0",
            nat_gateway_id=nat.id,
            opts=child,
        )

    def admit(self, name: str, source_security_group_id: pulumi.Input[str], description: str) -> pulumi.Resource:
        """Let members of another security group (the schema hook, the proxy) reach PostgreSQL; return the rule."""
        return allow_tcp(
            name,
            self.db_security_group_id,
            POSTGRES_PORT,
            description,
            self,
            source_security_group_id=source_security_group_id,
        )


def cidr_rule_name(name: str, cidr: str) -> str:
    """The logical name of the rule admitting ``cidr``: ``<name>-from-10-50-0-0-16`` for 10.50.0.0/16."""
    return f"{name}-from-{cidr.replace('.', '-').replace('/', '-')}"


def admit_clients(
    name: str,
    security_group_id: pulumi.Input[str],
    port: int,
    cidrs: Sequence[str],
    security_group_ids: Sequence[str],
    parent: pulumi.Resource,
) -> None:
    """Open ``port`` to the stack's ``allowedCidrs`` and ``allowedSecurityGroupIds``: one rule per source,
    named after it.

    A CIDR's rule is ``<name>-from-10-50-0-0-16``, not its place in the list: removing or reordering a
    CIDR then deletes or creates only that CIDR's rule, where position names re-pointed rule 0 at a
    CIDR rule 1 still held (AWS refuses the duplicate) and churned every later rule. The alias is the
    name the rule had before (``<name>-from-cidr-<index>``), so on an upgrade with an unchanged list
    each existing rule keeps its identity; change the list in a later ``pulumi up`` (README).
    """
    for index, cidr in enumerate(cidrs):
        allow_tcp(
            cidr_rule_name(name, cidr),
            security_group_id,
            port,
            f"PostgreSQL from {cidr}",
            parent,
            cidr=cidr,
            aliases=[pulumi.Alias(name=f"{name}-from-cidr-{index}")],
        )
    for sg_id in security_group_ids:
        allow_tcp(
            f"{name}-from-{sg_id}",
            security_group_id,
            port,
            f"PostgreSQL from {sg_id}",
            parent,
            source_security_group_id=sg_id,
        )
