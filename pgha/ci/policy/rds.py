"""RDS rules (AWS Security Hub FSBP RDS.*). Mandatory: encryption with a CMK, not public, Multi-AZ in
production, IAM auth, log exports, TLS-only parameter groups; backups >= 7 days and deletion
protection are mandatory in production and advisory elsewhere; enhanced monitoring, automatic
minor upgrades and copying tags to snapshots are advisory.

Read replicas (``replicateSourceDb`` set) are exempt from the Multi-AZ and backup rules: their
availability is the primary's Multi-AZ plus the other replicas, and their backups are the
primary's (RDS keeps none on a same-region replica; a cross-region replica that sets a retention
is still checked if it is not a replica).
"""

from __future__ import annotations

from collections.abc import Iterable

from pulumi_policy import ResourceValidationArgs

from pgha.ci.policy.common import (
    ADVISORY,
    MANDATORY,
    as_dict,
    as_list,
    is_production,
    per_environment,
    resource_rule,
    truthy,
    whole_number,
)

INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
MIN_BACKUP_DAYS = 7
#: What RDS for PostgreSQL can export to CloudWatch Logs (RDS.9 wants them published).
POSTGRES_LOGS = ("postgresql", "upgrade")


def _replica(args: ResourceValidationArgs) -> bool:
    return bool(args.props.get("replicateSourceDb"))


def encrypted_with_cmk(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.3 plus pgha's own bar: storage encrypted, with a customer-managed key."""
    if not truthy(args.props.get("storageEncrypted")):
        yield "storageEncrypted is not true: the database is stored unencrypted"
    key = str(args.props.get("kmsKeyId") or "")
    if not key or key.endswith("alias/aws/rds"):
        yield "kmsKeyId is not a customer-managed KMS key (the AWS-managed aws/rds key cannot be rotated or scoped)"


def not_public(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.2: no public endpoint."""
    if truthy(args.props.get("publiclyAccessible")):
        yield "publiclyAccessible is true: the instance gets a public DNS name and address"


def multi_az_in_production(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.5, on production primaries only."""
    if is_production(args) and not _replica(args) and not truthy(args.props.get("multiAz")):
        yield "multiAz is not true on a production primary: an AZ failure takes the database down"


def backup_retention(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.11: automated backups kept at least a week (replicas exempt, see the module docstring)."""
    if _replica(args):
        return
    days = whole_number(args.props.get("backupRetentionPeriod"))
    if days is None or days < MIN_BACKUP_DAYS:
        yield f"backupRetentionPeriod is {days if days is not None else 'unset'}: keep at least {MIN_BACKUP_DAYS} days"


def deletion_protection(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.8: deletion protection on."""
    if not truthy(args.props.get("deletionProtection")):
        yield "deletionProtection is not true: one API call deletes the instance"


def iam_auth(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.10: IAM database authentication."""
    if not truthy(args.props.get("iamDatabaseAuthenticationEnabled")):
        yield "iamDatabaseAuthenticationEnabled is not true"


def log_exports(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.9: PostgreSQL and upgrade logs published to CloudWatch Logs."""
    exported = set(args.props.get("enabledCloudwatchLogsExports") or [])
    missing = [log for log in POSTGRES_LOGS if log not in exported]
    if missing:
        yield f"enabledCloudwatchLogsExports lacks {', '.join(missing)}"


def enhanced_monitoring(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.6: enhanced monitoring (OS metrics) on."""
    interval = whole_number(args.props.get("monitoringInterval"))
    if interval is None or interval <= 0 or not args.props.get("monitoringRoleArn"):
        yield f"monitoringInterval is {interval if interval is not None else 'unset'} (or no monitoringRoleArn)"


def auto_minor_upgrades(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.13: automatic minor version upgrades (the provider's default is true)."""
    if args.props.get("autoMinorVersionUpgrade") is False:
        yield "autoMinorVersionUpgrade is false: security patches wait for a manual upgrade"


def copy_tags_to_snapshots(args: ResourceValidationArgs) -> Iterable[str]:
    """RDS.17: snapshots carry the instance's tags (the provider's default is false)."""
    if not truthy(args.props.get("copyTagsToSnapshot")):
        yield "copyTagsToSnapshot is not true: snapshots lose the owner/environment tags"


def force_ssl(args: ResourceValidationArgs) -> Iterable[str]:
    """Every PostgreSQL parameter group sets rds.force_ssl=1, so no client connects in plain text."""
    if not str(args.props.get("family", "")).startswith("postgres"):
        return
    values = {as_dict(p).get("name"): str(as_dict(p).get("value")) for p in as_list(args.props.get("parameters"))}
    if values.get("rds.force_ssl") != "1":
        yield f"rds.force_ssl is {values.get('rds.force_ssl', 'unset')!s}: clients may connect without TLS"


POLICIES = [
    resource_rule(
        "rds-encrypted-cmk",
        "RDS.3",
        "RDS storage is encrypted with a customer-managed KMS key",
        MANDATORY,
        [INSTANCE],
        encrypted_with_cmk,
    ),
    resource_rule(
        "rds-not-public", "RDS.2", "RDS instances are not publicly accessible", MANDATORY, [INSTANCE], not_public
    ),
    resource_rule(
        "rds-multi-az-prod",
        "RDS.5",
        "Production RDS primaries are Multi-AZ",
        MANDATORY,
        [INSTANCE],
        multi_az_in_production,
    ),
    *per_environment(
        "rds-backup-retention",
        "RDS.11",
        f"RDS keeps automated backups >= {MIN_BACKUP_DAYS} days",
        [INSTANCE],
        backup_retention,
    ),
    *per_environment(
        "rds-deletion-protection", "RDS.8", "RDS instances have deletion protection", [INSTANCE], deletion_protection
    ),
    resource_rule(
        "rds-iam-auth", "RDS.10", "RDS instances use IAM database authentication", MANDATORY, [INSTANCE], iam_auth
    ),
    resource_rule(
        "rds-log-exports",
        "RDS.9",
        "RDS PostgreSQL exports its logs to CloudWatch Logs",
        MANDATORY,
        [INSTANCE],
        log_exports,
    ),
    resource_rule(
        "rds-enhanced-monitoring", "RDS.6", "RDS enhanced monitoring is on", ADVISORY, [INSTANCE], enhanced_monitoring
    ),
    resource_rule(
        "rds-auto-minor-upgrade",
        "RDS.13",
        "RDS automatic minor version upgrades are on",
        ADVISORY,
        [INSTANCE],
        auto_minor_upgrades,
    ),
    resource_rule(
        "rds-copy-tags-to-snapshots",
        "RDS.17",
        "RDS instances copy tags to snapshots",
        ADVISORY,
        [INSTANCE],
        copy_tags_to_snapshots,
    ),
    resource_rule(
        "rds-force-ssl",
        "pgha (no FSBP control; AWS: 'Requiring an SSL/TLS connection to a PostgreSQL DB instance')",
        "PostgreSQL parameter groups require TLS (rds.force_ssl=1)",
        MANDATORY,
        [PARAMETER_GROUP],
        force_ssl,
    ),
]
