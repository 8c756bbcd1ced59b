"""The physical names AWS accepts, per resource type, and the longest name the program derives from a stack.

Two things name an AWS resource here: the program (``identifier``, ``name``) or Pulumi's autonaming,
which gives a resource without a name its logical name, a separator and 7 random hex characters
(pulumi-aws ``provider/autonaming.go`` and ``resource_overrides.go``; the bridge refuses a name over its
maximum at preview: "name '<logical>-' plus 7 random chars is longer than maximum length N",
pulumi/pulumi ``sdk/go/common/resource/resource_id.go``). Either way AWS and the provider then check
it against the rules below. The offline harness applies them to every registered resource
(:mod:`pgha.ci.aws_rules`); the stack config applies them to :data:`DERIVED_NAMES` before anything is
registered, so a stack name that would break one is refused with the derived name that breaks it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The provider's repository at the commit its rules were read (see pgha/ci/aws_rules.py).
TF_AWS = "hashicorp/terraform-provider-aws @1a5174b137"
PULUMI_AWS = "pulumi/pulumi-aws provider/resource_overrides.go, autonaming.go"
#: What autonaming appends after a separator: 7 random lowercase hex characters, shown as x.
RANDOM_SUFFIX = "xxxxxxx"


@dataclass(frozen=True)
class NameRule:
    """What AWS accepts as one resource type's name, and how Pulumi names it when the program does not."""

    #: The Pulumi input holding the name (``name``, ``identifier``, ``bucket``).
    field: str
    max_length: int
    #: The whole name must match this; ``allowed`` says it in words.
    pattern: str
    allowed: str
    source: str
    min_length: int = 1
    #: Letters first, no ``--``, no trailing ``-`` (RDS identifiers and group names).
    rds_style: bool = False
    #: A prefix AWS reserves (``internal-`` for load balancers, ``sg-``, ``alias/aws/``), or a whole name.
    reserved_prefix: str = ""
    reserved_name: str = ""
    #: Pulumi's autonaming: the longest name it makes (None: the type is not autonamed), its separator,
    #: and whether it lowercases the logical name.
    autoname_max: int | None = 255
    separator: str = "-"
    lowercase: bool = False

    def problems(self, name: str) -> list[str]:
        """Why AWS or the provider would refuse ``name`` (empty: accepted)."""
        found = []
        if not self.min_length <= len(name) <= self.max_length:
            found.append(f"{len(name)} characters, AWS allows {self.min_length} to {self.max_length}")
        if not re.fullmatch(self.pattern, name):
            found.append(f"must be {self.allowed}")
        if self.rds_style and (not name[:1].isalpha() or "--" in name or name.endswith("-")):
            found.append("must start with a letter, with no two hyphens in a row and no hyphen at the end")
        if self.reserved_prefix and name.startswith(self.reserved_prefix):
            found.append(f"must not start with {self.reserved_prefix!r}")
        if self.reserved_name and name.lower() == self.reserved_name:
            found.append(f"must not be {self.reserved_name!r}")
        return found


_RDS = f"{TF_AWS} internal/service/rds/validate.go; Amazon RDS API Reference"


def _iam(limit: int, source: str, autoname_max: int = 255) -> NameRule:
    """An IAM name (role, inline policy, instance profile): up to ``limit`` of letters, digits and +=,.@_-."""
    return NameRule(
        "name", limit, r"[\w+=,.@-]+", "letters, digits and +=,.@_-", f"{TF_AWS} {source}", autoname_max=autoname_max
    )


def _elb(source: str, **options: Any) -> NameRule:
    """A load balancer's or target group's name: at most 32 letters, digits and hyphens, none at either end."""
    return NameRule(
        "name",
        32,
        r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?",
        "letters, digits and hyphens, not at either end",
        f"{TF_AWS} {source}",
        **options,
    )


NAME_RULES: dict[str, NameRule] = {
    "aws:rds/instance:Instance": NameRule(
        "identifier",
        63,
        r"[a-z0-9-]+",
        "lowercase letters, digits and hyphens",
        f"{_RDS}, CreateDBInstance (DBInstanceIdentifier: 1 to 63)",
        rds_style=True,
        separator="",
    ),
    "aws:rds/parameterGroup:ParameterGroup": NameRule(
        "name",
        255,
        r"[a-z0-9-]+",
        "lowercase letters, digits and hyphens",
        f"{_RDS}, CreateDBParameterGroup",
        rds_style=True,
    ),
    "aws:rds/subnetGroup:SubnetGroup": NameRule(
        "name",
        255,
        r"[a-z0-9_ .-]+",
        "lowercase letters, digits, spaces, periods, underscores and hyphens",
        f"{_RDS}, CreateDBSubnetGroup (must not be default)",
        reserved_name="default",
    ),
    "aws:rds/proxy:Proxy": NameRule(
        "name",
        63,
        r"[a-z0-9-]+",
        "lowercase letters, digits and hyphens",
        f"{_RDS}, CreateDBProxy (DBProxyName: an identifier like a DB instance's)",
        rds_style=True,
    ),
    "aws:rds/eventSubscription:EventSubscription": NameRule(
        "name", 255, r"[A-Za-z0-9-]+", "letters, digits and hyphens", f"{_RDS}, CreateEventSubscription", rds_style=True
    ),
    "aws:iam/role:Role": _iam(
        64, f"internal/service/iam/role.go (roleNameMaxLen 64); {PULUMI_AWS} (AutoName 64)", autoname_max=64
    ),
    "aws:iam/rolePolicy:RolePolicy": _iam(128, "internal/service/iam/role_policy.go (rolePolicyNameMaxLen 128)"),
    "aws:iam/instanceProfile:InstanceProfile": _iam(
        128, "internal/service/iam/instance_profile.go (instanceProfileNameMaxLen 128)"
    ),
    "aws:lambda/function:Function": NameRule(
        "name",
        64,
        r"[A-Za-z0-9_-]+",
        "letters, digits, hyphens and underscores",
        f"{TF_AWS} internal/service/lambda/validate.go (function name at most 64); {PULUMI_AWS} (AutoName 64)",
        autoname_max=64,
    ),
    "aws:lb/loadBalancer:LoadBalancer": _elb(
        "internal/service/elbv2/validate.go (validName: at most 32)", reserved_prefix="internal-"
    ),
    "aws:lb/targetGroup:TargetGroup": _elb(
        f"internal/service/elbv2/validate.go (validTargetGroupName); {PULUMI_AWS} (AutoName 32)", autoname_max=32
    ),
    "aws:kms/alias:Alias": NameRule(
        "name",
        256,
        r"alias/[A-Za-z0-9_/-]+",
        "alias/ and letters, digits, /, _ and -",
        f"{TF_AWS} internal/service/kms/validate.go; AWS KMS API Reference, CreateAlias (AliasName: 1 to 256)",
        reserved_prefix="alias/aws/",
        autoname_max=None,
    ),
    "aws:cloudwatch/logGroup:LogGroup": NameRule(
        "name",
        512,
        r"[A-Za-z0-9_./#-]+",
        "letters, digits and _./#-",
        f"{TF_AWS} internal/service/logs/validate.go (validLogGroupName)",
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": NameRule(
        "name", 255, r"[^\x00-\x1f]+", "printable characters", f"{TF_AWS} internal/service/cloudwatch/metric_alarm.go"
    ),
    "aws:ec2/securityGroup:SecurityGroup": NameRule(
        "name",
        255,
        r"[^\x00-\x1f]+",
        "printable characters",
        f"{TF_AWS} internal/service/ec2/vpc_security_group.go",
        reserved_prefix="sg-",
    ),
    "aws:ec2/launchTemplate:LaunchTemplate": NameRule(
        "name",
        125,
        r"[A-Za-z0-9()./_-]+",
        "letters, digits and ()./_-",
        f"{TF_AWS} internal/verify/validate.go (ValidLaunchTemplateName)",
        min_length=3,
    ),
    "aws:s3/bucket:Bucket": NameRule(
        "bucket",
        63,
        r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?",
        "lowercase letters, digits, periods and hyphens",
        f"{TF_AWS} internal/service/s3/bucket.go (validBucketName); {PULUMI_AWS} (AutoNameTransform 63, lowercase)",
        min_length=3,
        autoname_max=63,
        lowercase=True,
    ),
    "aws:secretsmanager/secret:Secret": NameRule(
        "name",
        512,
        r"[A-Za-z0-9/_+=.@-]+",
        "letters, digits and /_+=.@-",
        f"{TF_AWS} internal/service/secretsmanager/validate.go",
    ),
    "aws:sns/topic:Topic": NameRule(
        "name",
        256,
        r"[A-Za-z0-9_-]+",
        "letters, digits, hyphens and underscores",
        f"{TF_AWS} internal/service/sns/topic.go (CustomizeDiff); {PULUMI_AWS} (AutoName 80)",
        autoname_max=80,
    ),
}


def autoname(rule: NameRule, logical: str) -> str:
    """The name Pulumi gives a resource of this rule's type whose name the program leaves out."""
    base = logical.lower() if rule.lowercase else logical
    return f"{base}{rule.separator}{RANDOM_SUFFIX}"


def physical_name(type_: str, logical: str, inputs: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(the name AWS sees, whether Pulumi made it) for a registered resource; (None, False) when unnamed."""
    rule = NAME_RULES.get(type_)
    if rule is None:
        return None, False
    given = inputs.get(rule.field)
    if isinstance(given, str):
        return given, False
    if rule.autoname_max is None or inputs.get("namePrefix") or inputs.get("identifierPrefix"):
        return None, False
    return autoname(rule, logical), True


def autoname_problems(rule: NameRule, logical: str) -> list[str]:
    """Why an autoname from ``logical`` would be refused: by the bridge (too long) or by AWS."""
    name = autoname(rule, logical)
    if rule.autoname_max is not None and len(name) > rule.autoname_max:
        return [
            f"name '{logical}{rule.separator}' plus 7 random chars is longer than maximum length {rule.autoname_max}"
        ]
    return rule.problems(name)


def primary_identifier(prefix: str) -> str:
    """The RDS primary's identifier (``<prefix>-primary``): the program names it, the RDS drills find it by it."""
    return f"{prefix}-primary"


def replica_identifier(prefix: str, number: int | str) -> str:
    """The identifier of read replica ``number`` (1-based: ``<prefix>-replica-N``; ``""`` gives the stem)."""
    return f"{prefix}-replica-{number}"


def dr_name(prefix: str) -> str:
    """The cross-region DR component's name (``<prefix>-dr``), which its resources' names start with."""
    return f"{prefix}-dr"


def dr_replica_identifier(dr_component: str) -> str:
    """The DR replica's identifier from its component's name (:func:`dr_name`): ``<prefix>-dr-replica``."""
    return f"{dr_component}-replica"


#: Per engine, the longest name of each type the program derives from the stack's prefix (``pgha-<stack>``):
#: (type, the name with ``{prefix}`` for the prefix, autonamed: the template is then the logical name's).
#: tests/test_names.py keeps it equal to what both engines register with every count at its maximum, so a
#: longer name added to a component fails there first.
DERIVED_NAMES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "rds": (
        ("aws:cloudwatch/logGroup:LogGroup", "/aws/rds/instance/{prefix}-dr-replica/postgresql", False),
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "{prefix}-dr-alarms-dr-replica-connections", True),
        ("aws:ec2/securityGroup:SecurityGroup", "{prefix}-net-endpoints-sg", True),
        ("aws:iam/role:Role", "{prefix}-dr-net-flow-logs-role", True),
        ("aws:iam/rolePolicy:RolePolicy", "{prefix}-dr-net-flow-logs-write", True),
        ("aws:kms/alias:Alias", "alias/{prefix}-dr-net", False),
        ("aws:lambda/function:Function", "{prefix}-schema", False),
        ("aws:rds/eventSubscription:EventSubscription", "{prefix}-dr-alarms-events", True),
        ("aws:rds/instance:Instance", "{prefix}-dr-replica", False),
        ("aws:rds/parameterGroup:ParameterGroup", "{prefix}-dr-pg17", True),
        ("aws:rds/proxy:Proxy", "{prefix}-proxy-rds", True),
        ("aws:rds/subnetGroup:SubnetGroup", "{prefix}-dr-net-db-subnets", True),
        ("aws:secretsmanager/secret:Secret", "{prefix}-logins-pgha-exec", True),
        ("aws:sns/topic:Topic", "{prefix}-dr-alarms-alerts", True),
    ),
    "patroni": (
        ("aws:cloudwatch/logGroup:LogGroup", "/pgha/{prefix}-net/flow-logs", False),
        ("aws:cloudwatch/metricAlarm:MetricAlarm", "{prefix}-alarms-writer-no-primary", True),
        ("aws:ec2/launchTemplate:LaunchTemplate", "{prefix}-patroni-3-lt", True),
        ("aws:ec2/securityGroup:SecurityGroup", "{prefix}-net-endpoints-sg", True),
        ("aws:iam/instanceProfile:InstanceProfile", "{prefix}-patroni-2-profile", True),
        ("aws:iam/role:Role", "{prefix}-patroni-backups-replication-role", True),
        ("aws:iam/rolePolicy:RolePolicy", "{prefix}-patroni-backups-replication-access", True),
        ("aws:kms/alias:Alias", "alias/{prefix}-patroni-dr-backups", False),
        ("aws:lambda/function:Function", "{prefix}-schema", False),
        ("aws:lb/loadBalancer:LoadBalancer", "{prefix}-nlb", True),
        ("aws:lb/targetGroup:TargetGroup", "{prefix}-rw", True),
        ("aws:rds/subnetGroup:SubnetGroup", "{prefix}-net-db-subnets", True),
        ("aws:s3/bucket:Bucket", "{prefix}-patroni-dr-backup-logs", True),
        ("aws:secretsmanager/secret:Secret", "{prefix}-patroni-superuser-client-tls", True),
        ("aws:sns/topic:Topic", "{prefix}-alarms-alerts", True),
    ),
}


def longest_derived(
    resources: Iterable[tuple[str, str, Mapping[str, Any]]], prefix: str
) -> tuple[tuple[str, str, bool], ...]:
    """From registered resources ``(type, logical name, inputs)``: per type, the longest physical name made from
    ``prefix``, as (type, template with ``{prefix}``, autonamed) sorted by type: what :data:`DERIVED_NAMES` holds.
    For an autonamed resource the template is its logical name's."""
    longest: dict[str, tuple[int, tuple[str, str, bool]]] = {}
    for type_, logical, inputs in resources:
        name, autonamed = physical_name(type_, logical, inputs)
        base = logical if autonamed else name
        if name is None or base is None or prefix not in base:
            continue
        if len(name) > longest.get(type_, (-1, None))[0]:
            longest[type_] = (len(name), (type_, base.replace(prefix, "{prefix}", 1), autonamed))
    return tuple(sorted(entry for _, entry in longest.values()))


def stack_name_problems(prefix: str, engine: str) -> list[str]:
    """Why the names derived from this stack's prefix would be refused: one line per broken name."""
    found = []
    for type_, template, autonamed in DERIVED_NAMES[engine]:
        rule = NAME_RULES[type_]
        name = template.replace("{prefix}", prefix)
        problems = autoname_problems(rule, name) if autonamed else rule.problems(name)
        if problems:
            shown = autoname(rule, name) if autonamed else name
            found.append(f"{shown!r} ({type_.split(':')[1]} {rule.field}): {problems[0]}")
    return found
