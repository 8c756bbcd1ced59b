"""The one table of stateful resource types and the inputs that force the AWS provider to replace them.

A replacement of these resources destroys data (a database, a volume, a key, a bucket, a secret)
or an identity other things hold on to (a network interface's address, an instance), or takes the
database down (a data volume's attachment: detaching it stops the Patroni node first). `pgha diff`
classes a change as ``replace`` from this table; `pgha diff` and `pgha preview-check` call a
``replace`` or ``delete`` of any type listed here dangerous.

Where the facts come from: pulumi-aws 7.x is generated from the Terraform AWS provider, and an
input replaces the resource exactly when the Terraform schema marks it ``ForceNew: true`` (or a
``CustomizeDiff`` calls ``ForceNew``/``ForceNewIf``). The installed Python SDK (pulumi_aws 7.51.1)
does not carry that flag in its docstrings, so each row names the provider source file it was read
from in github.com/hashicorp/terraform-provider-aws, with the (abbreviated) commit of the version
read. Input names are the Pulumi (camelCase) ones.

``computed``: the attribute is also ``Computed`` in the schema, so *removing* it from the program
keeps the old value (no diff); only setting a different value replaces the resource. ``default``:
the schema's ``Default``, which an input removed from the program takes.
"""

from __future__ import annotations

from dataclasses import dataclass

TF_AWS = "hashicorp/terraform-provider-aws"


@dataclass(frozen=True)
class ForceNew:
    """An input (a dotted path into nested objects) whose change replaces the resource."""

    path: str
    computed: bool = False
    #: Set when the provider forces replacement only in some cases (shown with the reason).
    condition: str = ""
    #: An input that must be true for this one to force replacement (e.g. userDataReplaceOnChange).
    when: str = ""
    #: The schema's default: removing the input from the program means this value.
    default: object = None


@dataclass(frozen=True)
class StatefulType:
    """A resource type whose replacement or deletion loses data or identity."""

    label: str
    force_new: tuple[ForceNew, ...]
    source: str


def _f(*paths: str, computed: bool = False, condition: str = "", when: str = "") -> tuple[ForceNew, ...]:
    return tuple(ForceNew(path, computed, condition, when) for path in paths)


STATEFUL_TYPES: dict[str, StatefulType] = {
    "aws:rds/instance:Instance": StatefulType(
        "RDS DB instance",
        _f(
            "identifier",
            "identifierPrefix",
            "kmsKeyId",
            "availabilityZone",
            "dbName",
            "username",
            "engine",
            "snapshotIdentifier",
            "characterSetName",
            "ncharCharacterSetName",
            "timezone",
            computed=True,
        )
        + _f("storageEncrypted", "customIamInstanceProfile", "restoreToPointInTime")
        # s3_import itself is not ForceNew, every attribute inside it is
        + _f(
            "s3Import.bucketName",
            "s3Import.bucketPrefix",
            "s3Import.ingestionRole",
            "s3Import.sourceEngine",
            "s3Import.sourceEngineVersion",
        ),
        f"{TF_AWS} internal/service/rds/instance.go @00e4b238 (ResourceInstance schema, ForceNew attributes)",
    ),
    "aws:rds/parameterGroup:ParameterGroup": StatefulType(
        "RDS DB parameter group",
        _f("name", "namePrefix", computed=True) + _f("family", "description"),
        f"{TF_AWS} internal/service/rds/parameter_group.go @01606926 (resourceParameterGroup schema)",
    ),
    "aws:rds/subnetGroup:SubnetGroup": StatefulType(
        "RDS DB subnet group",
        _f("name", "namePrefix", computed=True),
        f"{TF_AWS} internal/service/rds/subnet_group.go @01c08000 (ResourceSubnetGroup schema)",
    ),
    "aws:kms/key:Key": StatefulType(
        "KMS key",
        _f("customKeyStoreId", "xksKeyId")
        + _f("multiRegion", computed=True)
        + (
            ForceNew("customerMasterKeySpec", default="SYMMETRIC_DEFAULT"),
            ForceNew("keyUsage", default="ENCRYPT_DECRYPT"),
        ),
        f"{TF_AWS} internal/service/kms/key.go @00a35305 (resourceKey schema)",
    ),
    "aws:ebs/volume:Volume": StatefulType(
        "EBS volume",
        _f("availabilityZone", "multiAttachEnabled", "outpostArn")
        + _f("encrypted", "kmsKeyId", "snapshotId", computed=True),
        f"{TF_AWS} internal/service/ec2/ebs_volume.go @0073593e (resourceEBSVolume schema)",
    ),
    # Patroni's data volumes are attached with stop_instance_before_detaching: deleting the attachment
    # stops the node and nothing starts it again. A replacement ends in that delete, unless its create
    # (first, by Pulumi's default) is refused because the volume is still attached: a half-done `up`.
    "aws:ec2/volumeAttachment:VolumeAttachment": StatefulType(
        "EBS volume attachment",
        _f("deviceName", "instanceId", "volumeId"),
        f"{TF_AWS} internal/service/ec2/ebs_volume_attachment.go @0620f2a6 (ResourceVolumeAttachment schema; "
        "delete stops the instance when stop_instance_before_detaching)",
    ),
    "aws:ec2/networkInterface:NetworkInterface": StatefulType(
        "network interface",
        _f("subnetId")
        + _f("interfaceType", computed=True)
        + _f("privateIps", "privateIpList", computed=True, condition="when the primary private IP changes"),
        f"{TF_AWS} internal/service/ec2/vpc_network_interface.go @01c08000 (schema + CustomizeDiff ForceNewIf)",
    ),
    "aws:s3/bucket:Bucket": StatefulType(
        "S3 bucket",
        _f("bucketPrefix") + _f("bucket", "objectLockEnabled", computed=True),
        f"{TF_AWS} internal/service/s3/bucket.go @0070bcd1 (ResourceBucket schema; object_lock_enabled: later)",
    ),
    "aws:secretsmanager/secret:Secret": StatefulType(
        "Secrets Manager secret",
        _f("name", "namePrefix", computed=True),
        f"{TF_AWS} internal/service/secretsmanager/secret.go @00c21ced (resourceSecret schema)",
    ),
    "aws:ec2/instance:Instance": StatefulType(
        "EC2 instance",
        _f(
            "ami",
            "availabilityZone",
            "subnetId",
            "privateIp",
            "keyName",
            "tenancy",
            "placementGroup",
            "placementPartitionNumber",
            "hostId",
            "ipv6AddressCount",
            "ipv6Addresses",
            "securityGroups",
            "associatePublicIpAddress",
            "ebsOptimized",
            "cpuCoreCount",
            "cpuThreadsPerCore",
            "privateDnsNameOptions",
            "ephemeralBlockDevices",
            computed=True,
        )
        + _f(
            "launchTemplate.id",
            "launchTemplate.name",
            "networkInterfaces",
            "ebsBlockDevices",
            "hibernation",
            "enclaveOptions.enabled",
            "rootBlockDevice.encrypted",
            "rootBlockDevice.kmsKeyId",
        )
        + _f("launchTemplate.version", condition="CustomizeDiff: the instance runs another template version")
        + _f("userData", "userDataBase64", condition="userDataReplaceOnChange is true", when="userDataReplaceOnChange"),
        f"{TF_AWS} internal/service/ec2/ec2_instance.go @0015dfcd (ResourceInstance schema + CustomizeDiff)",
    ),
}


def is_stateful(type_: str) -> bool:
    """Whether replacing or deleting a resource of this type loses data or identity."""
    return type_ in STATEFUL_TYPES


def force_new_inputs(type_: str) -> tuple[ForceNew, ...]:
    """The inputs whose change replaces a resource of this type (empty for non-stateful types)."""
    stateful = STATEFUL_TYPES.get(type_)
    return stateful.force_new if stateful else ()
