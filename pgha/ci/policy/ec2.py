"""EC2 rules (FSBP EC2.*), all mandatory: IMDSv2 only, encrypted EBS, no public IPv4 addresses.

An instance started from a launch template is checked through the template (EC2.170, EC2.25):
the template is where pgha sets metadata options, volumes and network interfaces.
"""

from __future__ import annotations

from collections.abc import Iterable

from pulumi_policy import ResourceValidationArgs

from pgha.ci.policy.common import MANDATORY, as_dict, resource_rule, truthy

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
VOLUME = "aws:ebs/volume:Volume"
SUBNET = "aws:ec2/subnet:Subnet"


def imdsv2(args: ResourceValidationArgs) -> Iterable[str]:
    """EC2.8 / EC2.170: instance metadata only with session tokens (IMDSv2)."""
    metadata = as_dict(args.props.get("metadataOptions"))
    if args.resource_type == INSTANCE and not metadata and args.props.get("launchTemplate"):
        return  # the launch template carries the metadata options and is checked itself
    if metadata.get("httpTokens") != "required":
        yield f"metadataOptions.httpTokens is {metadata.get('httpTokens', 'unset')}: IMDSv1 stays reachable"


def encrypted_volumes(args: ResourceValidationArgs) -> Iterable[str]:
    """EC2.3: EBS volumes encrypted at rest (volumes, template block devices, instance block devices)."""
    props = args.props
    if args.resource_type == VOLUME:
        if not truthy(props.get("encrypted")):
            yield "encrypted is not true"
        return
    if args.resource_type == LAUNCH_TEMPLATE:
        for mapping in props.get("blockDeviceMappings") or []:
            ebs = as_dict(mapping.get("ebs"))
            if ebs and not truthy(ebs.get("encrypted")):
                yield f"block device {mapping.get('deviceName', '?')} is not encrypted"
        return
    devices = [as_dict(props.get("rootBlockDevice")), *(as_dict(d) for d in props.get("ebsBlockDevices") or [])]
    for device in devices:
        if device and device.get("encrypted") is False:
            yield f"block device {device.get('deviceName', 'root')} is not encrypted"


def no_public_ip(args: ResourceValidationArgs) -> Iterable[str]:
    """EC2.9 / EC2.25: no public IPv4 address on instances or template network interfaces."""
    if args.resource_type == INSTANCE and truthy(args.props.get("associatePublicIpAddress")):
        yield "associatePublicIpAddress is true"
    for interface in args.props.get("networkInterfaces") or []:
        if truthy(as_dict(interface).get("associatePublicIpAddress")):
            yield f"network interface {as_dict(interface).get('deviceIndex', '?')} gets a public IP"


def subnet_no_auto_public_ip(args: ResourceValidationArgs) -> Iterable[str]:
    """EC2.15: subnets do not hand out public IPv4 addresses at launch."""
    if truthy(args.props.get("mapPublicIpOnLaunch")):
        yield "mapPublicIpOnLaunch is true: every instance launched here gets a public address"


POLICIES = [
    resource_rule(
        "ec2-imdsv2",
        "EC2.8, EC2.170",
        "EC2 instances and launch templates require IMDSv2",
        MANDATORY,
        [INSTANCE, LAUNCH_TEMPLATE],
        imdsv2,
    ),
    resource_rule(
        "ec2-encrypted-volumes",
        "EC2.3",
        "EBS volumes are encrypted",
        MANDATORY,
        [VOLUME, LAUNCH_TEMPLATE, INSTANCE],
        encrypted_volumes,
    ),
    resource_rule(
        "ec2-no-public-ip",
        "EC2.9, EC2.25",
        "EC2 instances and launch templates get no public IPv4",
        MANDATORY,
        [INSTANCE, LAUNCH_TEMPLATE],
        no_public_ip,
    ),
    resource_rule(
        "ec2-subnet-no-auto-public-ip",
        "EC2.15",
        "Subnets do not assign public IPv4 addresses",
        MANDATORY,
        [SUBNET],
        subnet_no_auto_public_ip,
    ),
]
