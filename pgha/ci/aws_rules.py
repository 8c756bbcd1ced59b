"""What AWS and the AWS provider refuse, checked on every resource the program registers under mocks.

The mocks accept any input; a real ``pulumi up`` does not. Each :class:`AwsRule` states one refusal,
where it comes from (an AWS document, or a file of hashicorp/terraform-provider-aws, from which
pulumi-aws is generated) and which resources it applies to. :func:`refusals` applies every rule to
what :func:`pgha.ci.harness.run_program` recorded, so a test, ``pgha plan``, ``pgha diff`` and
``pgha policy`` fail where ``pulumi up`` would, naming the rule and its source.

The provider files were read at ``1a5174b137`` (v5.46, the newest whole copy to hand); pulumi-aws 7.x
is built on provider v6, whose versions of these files were not read, so each provider rule was also
checked against the installed pulumi_aws docstrings. What no table here can show, only a real deploy:
account quotas other than Lambda concurrency, service availability per region, capacity, and anything
the provider checks against live state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components.names import NAME_RULES, TF_AWS, physical_name
from components.partitions import partition_of
from pgha.ci.harness import LAMBDA_CONCURRENCY, Plan, RegisteredResource, Secret

RDS_UG = "Amazon RDS User Guide"
RDS_API = "Amazon RDS API Reference"

INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
FUNCTION = "aws:lambda/function:Function"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


@dataclass(frozen=True)
class Refusal:
    """One resource AWS or the provider would refuse, and why."""

    resource: str
    type: str
    rule: str
    message: str
    source: str

    def __str__(self) -> str:
        return f"{self.resource} ({self.type}): {self.message} [{self.rule}; {self.source}]"


class AwsRefusalError(Exception):
    """``pulumi up`` would fail: the program declares what AWS or the provider refuses."""

    def __init__(self, refused: Sequence[Refusal]):
        self.refusals = list(refused)
        super().__init__(
            f"AWS would refuse {len(self.refusals)} resource setting(s):\n"
            + "\n".join(f"  - {r}" for r in self.refusals)
        )


@dataclass
class Stack:
    """Everything one run registered, indexed for rules that look beyond one resource."""

    plan: Plan
    by_urn: dict[str, RegisteredResource] = field(init=False)

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.plan.resources}

    @property
    def resources(self) -> list[RegisteredResource]:
        """What the run registered, in order."""
        return self.plan.resources

    def region(self, resource: RegisteredResource) -> str:
        """The region a resource is created in."""
        return self.plan.region_of(resource)

    def instance(self, reference: object) -> RegisteredResource | None:
        """The RDS instance a ``replicateSourceDb`` names (identifier or ARN), if this stack declares it."""
        identifier = str(reference).rsplit(":", 1)[-1]
        return next(
            (r for r in self.resources if r.type == INSTANCE and r.inputs.get("identifier") == identifier), None
        )

    def depends_on(self, resource: RegisteredResource) -> set[str]:
        """Every URN ``resource`` waits for, directly or through what it waits for."""
        seen: set[str] = set()
        todo = list(resource.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo += self.by_urn[urn].dependencies if urn in self.by_urn else []
        return seen


Check = Callable[[RegisteredResource, Stack], Iterable[str]]


@dataclass(frozen=True)
class AwsRule:
    """A refusal: what is refused, where that is written, and the check (empty = accepted)."""

    id: str
    types: tuple[str, ...]
    source: str
    check: Check


# --- readers ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Secret) else value


def _version(text: Any) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"[0-9]+", str(text))[:2])


def _strings(value: Any) -> Iterator[str]:
    value = _plain(value)
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


# --- RDS --------------------------------------------------------------------------------

#: RDS for PostgreSQL log types CloudWatch Logs can export (CreateDBInstance, EnableCloudwatchLogsExports).
POSTGRES_LOG_EXPORTS = ("postgresql", "upgrade", "iam-db-auth-error")
MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
#: DB instance event categories (RDS User Guide, "Amazon RDS event categories and event messages").
INSTANCE_EVENT_CATEGORIES = (
    "availability",
    "backup",
    "configuration change",
    "creation",
    "deletion",
    "failover",
    "failure",
    "low storage",
    "maintenance",
    "notification",
    "read replica",
    "recovery",
    "restoration",
    "security",
    "security patching",
)


def _replica_backups(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    retention = r.inputs.get("backupRetentionPeriod") or 0
    if not r.inputs.get("replicateSourceDb") or retention <= 0:
        return
    source = stack.instance(r.inputs["replicateSourceDb"])
    version = _version(source.inputs.get("engineVersion", "")) if source else ()
    if source and source.inputs.get("engine") == "postgres" and version and version < (14, 1):
        yield (
            f"backupRetentionPeriod {retention} on a read replica of PostgreSQL {version[0]}: automated backups "
            "of a PostgreSQL read replica need 14.1 or later"
        )


def _replica_fields(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    if not r.inputs.get("replicateSourceDb"):
        return
    if r.inputs.get("manageMasterUserPassword"):
        yield "manageMasterUserPassword on a read replica: ManageMasterUserPassword isn't supported for read replica"
    for key in ("dbName", "username"):
        if r.inputs.get(key):
            yield f"{key} conflicts with replicateSourceDb: a replica takes its source's"


def _replica_source_backups(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    if r.inputs.get("replicateSourceDb") or r.inputs.get("backupRetentionPeriod") != 0:
        return
    replicas = [
        other.name
        for other in stack.resources
        if other.type == INSTANCE
        and other.inputs.get("replicateSourceDb")
        and stack.instance(other.inputs["replicateSourceDb"]) is r
    ]
    if replicas:
        yield f"backupRetentionPeriod 0 on the source of {', '.join(replicas)}: a replica's source needs backups"


def _multi_az_zone(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    if r.inputs.get("multiAz") and r.inputs.get("availabilityZone"):
        yield "availabilityZone with multiAz: the AZ of a Multi-AZ instance is RDS's to choose"


def _monitoring(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    interval = r.inputs.get("monitoringInterval", 0)
    if interval not in MONITORING_INTERVALS:
        yield f"monitoringInterval {interval}: must be one of {', '.join(map(str, MONITORING_INTERVALS))}"
    if interval and not r.inputs.get("monitoringRoleArn"):
        yield f"monitoringInterval {interval} without monitoringRoleArn"


def _insights_retention(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    days = r.inputs.get("performanceInsightsRetentionPeriod")
    if days is not None and not (days in (7, 731) or (days % 31 == 0 and 31 <= days <= 713)):
        yield f"performanceInsightsRetentionPeriod {days}: must be 7, 731 or a whole number of months times 31 (31-713)"


def _log_exports(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    source = stack.instance(r.inputs["replicateSourceDb"]) if r.inputs.get("replicateSourceDb") else r
    if (source or r).inputs.get("engine", "postgres") != "postgres":
        return
    for log in r.inputs.get("enabledCloudwatchLogsExports") or []:
        if log not in POSTGRES_LOG_EXPORTS:
            yield f"enabledCloudwatchLogsExports {log!r}: PostgreSQL exports {', '.join(POSTGRES_LOG_EXPORTS)}"


_DAILY = r"([01][0-9]|2[0-3]):[0-5][0-9]"
_WEEKLY = rf"(mon|tue|wed|thu|fri|sat|sun):{_DAILY}"


def _backups(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    retention = r.inputs.get("backupRetentionPeriod")
    if retention is not None and not 0 <= retention <= 35:
        yield f"backupRetentionPeriod {retention}: must be from 0 to 35"
    window = r.inputs.get("backupWindow")
    if window and not re.fullmatch(f"{_DAILY}-{_DAILY}", window):
        yield f"backupWindow {window!r}: must be hh24:mi-hh24:mi"
    maintenance = r.inputs.get("maintenanceWindow")
    if maintenance and not re.fullmatch(f"{_WEEKLY}-{_WEEKLY}", str(maintenance).lower()):
        yield f"maintenanceWindow {maintenance!r}: must be ddd:hh24:mi-ddd:hh24:mi"


def _autoscaling(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    ceiling = r.inputs.get("maxAllocatedStorage")
    source = stack.instance(r.inputs["replicateSourceDb"]) if r.inputs.get("replicateSourceDb") else r
    storage = (source or r).inputs.get("allocatedStorage")
    if ceiling and storage and ceiling * 10 < storage * 11:
        yield (
            f"maxAllocatedStorage {ceiling} GiB: must be at least 10% above the allocated storage ({storage} GiB): "
            "Invalid max storage size"
        )


def _final_snapshot(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    if r.inputs.get("skipFinalSnapshot", False):
        return
    snapshot = r.inputs.get("finalSnapshotIdentifier")
    if r.inputs.get("replicateSourceDb"):
        yield "a final snapshot of a read replica: RDS refuses FinalDBSnapshotIdentifier when deleting a replica"
    elif not snapshot:
        yield "skipFinalSnapshot false without finalSnapshotIdentifier: the deletion fails"
    elif (
        len(snapshot) > 255
        or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", snapshot)
        or "--" in snapshot
        or snapshot.endswith("-")
    ):
        yield (
            f"finalSnapshotIdentifier {snapshot!r}: 1-255 letters, digits and hyphens, a letter first, no two "
            "hyphens in a row and none at the end"
        )


def _event_categories(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    if r.inputs.get("sourceType") != "db-instance":
        return
    for category in r.inputs.get("eventCategories") or []:
        if category not in INSTANCE_EVENT_CATEGORIES:
            yield f"eventCategories {category!r}: not an event category of db-instance"


# --- Secrets Manager ------------------------------------------------------------------


def _secret_replicas(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    region = stack.region(r)
    for replica in r.inputs.get("replicas") or []:
        target, key = replica.get("region"), str(replica.get("kmsKeyId") or "")
        if target == region:
            yield f"replica region {target}: a secret cannot replicate to its own region"
        elif partition_of(target or "") != partition_of(region):
            yield f"replica region {target}: Secrets Manager replicates only within a partition"
        if key.startswith("arn:") and key.split(":")[3] != target:
            yield f"replica kmsKeyId {key}: the replica's key must be a key of {target}"


# --- parameter groups -------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """A parameter of the RDS for PostgreSQL families, as DescribeEngineDefaultParameters lists it."""

    #: ``static`` (applies at the next reboot) or ``dynamic``.
    apply_type: str
    #: The families (majors) that have it.
    since: int = 14
    #: The PostgreSQL setting it is (``pg_settings.name``), checked against a real server by the tests; None for
    #: RDS's own parameters (``rds.*``) and extensions' whose library pgha does not run in the tests.
    postgres_name: str | None = None


def _pg(apply_type: str, name: str) -> Parameter:
    return Parameter(apply_type, postgres_name=name)


#: The parameters pgha sets, by name. Static means PostgreSQL's ``postmaster`` context (RDS applies those only at
#: a reboot); the tests compare each ``postgres_name`` with ``pg_settings.context`` of a real PostgreSQL. Any
#: name not here is refused, as RDS refuses a name the family does not have ("Could not find parameter").
POSTGRES_PARAMETERS: dict[str, Parameter] = {
    "rds.force_ssl": Parameter("dynamic"),
    "ssl_min_protocol_version": _pg("dynamic", "ssl_min_protocol_version"),
    "password_encryption": _pg("dynamic", "password_encryption"),
    "shared_preload_libraries": _pg("static", "shared_preload_libraries"),
    "cron.database_name": _pg("static", "cron.database_name"),
    "max_connections": _pg("static", "max_connections"),
    "pg_stat_statements.track": _pg("dynamic", "pg_stat_statements.track"),
    "track_io_timing": _pg("dynamic", "track_io_timing"),
    "log_min_duration_statement": _pg("dynamic", "log_min_duration_statement"),
    "log_statement": _pg("dynamic", "log_statement"),
    "log_connections": _pg("dynamic", "log_connections"),
    "log_disconnections": _pg("dynamic", "log_disconnections"),
    "log_lock_waits": _pg("dynamic", "log_lock_waits"),
    "log_temp_files": _pg("dynamic", "log_temp_files"),
    "log_autovacuum_min_duration": _pg("dynamic", "log_autovacuum_min_duration"),
    "idle_in_transaction_session_timeout": _pg("dynamic", "idle_in_transaction_session_timeout"),
}


def _parameters(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    family = str(r.inputs.get("family", ""))
    match = re.fullmatch(r"postgres([0-9]+)", family)
    if not match:
        yield f"family {family!r}: pgha knows the postgres<major> families only"
        return
    major = int(match[1])
    for item in r.inputs.get("parameters") or []:
        name, method = item.get("name"), item.get("applyMethod", "immediate")
        known = POSTGRES_PARAMETERS.get(name)
        if known is None or major < known.since:
            yield f"parameter {name!r}: not a parameter of {family} (Could not find parameter with name)"
        elif method not in ("immediate", "pending-reboot"):
            yield f"parameter {name!r}: applyMethod {method!r} must be immediate or pending-reboot"
        elif method == "immediate" and known.apply_type == "static":
            yield f"parameter {name!r} is static: cannot use immediate apply method for static parameter"


# --- Lambda -----------------------------------------------------------------------------


def _reserved_concurrency(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    reserved = r.inputs.get("reservedConcurrentExecutions")
    if reserved is None or reserved < 0:
        return
    quota = LAMBDA_CONCURRENCY["quota"]
    minimum = min(100, quota)
    if quota - reserved < minimum:
        yield (
            f"reservedConcurrentExecutions {reserved} in an account whose concurrency quota is {quota}: "
            f"decreases account's UnreservedConcurrentExecution below its minimum value of {minimum}"
        )


def _function_limits(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    timeout, memory = r.inputs.get("timeout", 3), r.inputs.get("memorySize", 128)
    if not 1 <= timeout <= 900:
        yield f"timeout {timeout}: must be from 1 to 900 seconds"
    if not 128 <= memory <= 10240:
        yield f"memorySize {memory}: must be from 128 to 10240 MB"


# --- CloudWatch, KMS, Secrets Manager settings ------------------------------------------

#: CloudWatch Logs retentionInDays (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
#: What a metric-math alarm may not also set at the top level (PutMetricAlarm, Metrics).
SINGLE_METRIC_INPUTS = ("metricName", "namespace", "dimensions", "period", "statistic", "extendedStatistic", "unit")


def _period_ok(period: Any) -> bool:
    return period in (10, 20, 30) or (isinstance(period, int) and period > 0 and period % 60 == 0)


def _alarm(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    queries = r.inputs.get("metricQueries") or []
    if not queries:
        if not r.inputs.get("metricName"):
            yield "neither metricName nor metricQueries"
        elif bool(r.inputs.get("statistic")) == bool(r.inputs.get("extendedStatistic")):
            yield "one of statistic or extendedStatistic must be set for a single-metric alarm"
        if not _period_ok(r.inputs.get("period")):
            yield f"period {r.inputs.get('period')}: must be 10, 20, 30 or a multiple of 60"
        periods = [r.inputs.get("period")]
    else:
        yield from (
            f"{key} with metricQueries: a metric-math alarm sets them per metric"
            for key in SINGLE_METRIC_INPUTS
            if r.inputs.get(key) is not None
        )
        returned = [q.get("id") for q in queries if q.get("returnData")]
        if len(returned) != 1:
            yield f"{len(returned)} metricQueries return data: exactly one must"
        expressions = [q for q in queries if q.get("expression")]
        metrics = [q for q in queries if q.get("metric")]
        if len(queries) > 20 or len(expressions) > 10 or len(metrics) > 10:
            yield "more than 20 metricQueries, or more than 10 metrics or 10 expressions"
        for query in queries:
            if not re.fullmatch(r"[a-z][A-Za-z0-9_]*", str(query.get("id", ""))):
                yield f"metricQueries id {query.get('id')!r}: a lowercase letter, then letters, digits and _"
            if bool(query.get("expression")) == bool(query.get("metric")):
                yield f"metricQueries {query.get('id')!r}: exactly one of expression or metric"
        for metric in (q["metric"] for q in metrics):
            if not _period_ok(metric.get("period")):
                yield f"metric {metric.get('metricName')} period {metric.get('period')}: 10, 20, 30 or a multiple of 60"
        periods = [q["metric"].get("period") for q in metrics]
    evaluation = r.inputs.get("evaluationPeriods") or 0
    if evaluation < 1 or not 1 <= (r.inputs.get("datapointsToAlarm") or evaluation) <= evaluation:
        yield "evaluationPeriods must be at least 1 and datapointsToAlarm between 1 and evaluationPeriods"
    for period in (p for p in periods if isinstance(p, int)):
        if period * evaluation > (86400 if period < 3600 else 604800):
            yield f"period {period} x evaluationPeriods {evaluation}: longer than CloudWatch evaluates"


def _retention(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    days = r.inputs.get("retentionInDays")
    if days and days not in LOG_RETENTION_DAYS:  # 0: never expire
        yield f"retentionInDays {days}: not one of CloudWatch Logs' retention periods"


def _key(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    window, rotation = r.inputs.get("deletionWindowInDays"), r.inputs.get("rotationPeriodInDays")
    if window is not None and not 7 <= window <= 30:
        yield f"deletionWindowInDays {window}: must be from 7 to 30"
    if rotation is not None and not 90 <= rotation <= 2560:
        yield f"rotationPeriodInDays {rotation}: must be from 90 to 2560"
    if rotation is not None and not r.inputs.get("enableKeyRotation"):
        yield "rotationPeriodInDays without enableKeyRotation"


def _secret(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    window = r.inputs.get("recoveryWindowInDays")
    if window is not None and window != 0 and not 7 <= window <= 30:
        yield f"recoveryWindowInDays {window}: must be 0 or from 7 to 30"


# --- IAM and other policy documents ------------------------------------------------------

#: Input holding a policy document -> whether it is a resource-based policy (needs a Principal) or an identity one.
POLICY_INPUTS: dict[str, tuple[str, bool]] = {
    ROLE: ("assumeRolePolicy", True),
    ROLE_POLICY: ("policy", False),
    "aws:kms/key:Key": ("policy", True),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy", True),
    "aws:sns/topicPolicy:TopicPolicy": ("policy", True),
    "aws:secretsmanager/secretPolicy:SecretPolicy": ("policy", True),
}
#: Size limits in characters, whitespace not counted (IAM quotas; KMS key policy 32 KB).
POLICY_SIZE = {ROLE: 2048, ROLE_POLICY: 10240, "aws:kms/key:Key": 32768, "aws:s3/bucketPolicy:BucketPolicy": 20480}


def _policy_document(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    key, resource_based = POLICY_INPUTS[r.type]
    raw = _plain(r.inputs.get(key))
    if raw is None:
        return
    try:
        document = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        yield f"{key} is not JSON: MalformedPolicyDocument"
        return
    if not isinstance(document, Mapping) or document.get("Version", "2008-10-17") not in ("2012-10-17", "2008-10-17"):
        yield f"{key}: not a policy document with Version 2012-10-17 or 2008-10-17"
        return
    statements = document.get("Statement")
    statements = [statements] if isinstance(statements, Mapping) else statements
    if not statements:
        yield f"{key}: no Statement"
        return
    for index, statement in enumerate(statements):
        where = f"{key} Statement[{index}]"
        if statement.get("Effect") not in ("Allow", "Deny"):
            yield f"{where}: Effect must be Allow or Deny"
        for a, b in (("Action", "NotAction"), ("Resource", "NotResource"), ("Principal", "NotPrincipal")):
            if a in statement and b in statement:
                yield f"{where}: {a} and {b} exclude each other"
        if "Action" not in statement and "NotAction" not in statement:
            yield f"{where}: no Action"
        has_principal = "Principal" in statement or "NotPrincipal" in statement
        if resource_based and not has_principal:
            yield f"{where}: a resource-based policy needs a Principal"
        if not resource_based:
            if has_principal:
                yield f"{where}: Principal is not allowed in an identity-based policy"
            if "Resource" not in statement and "NotResource" not in statement:
                yield f"{where}: an identity-based policy needs a Resource"
        for arn in _strings(statement.get("Resource", statement.get("NotResource"))):
            if arn != "*" and not (arn.startswith("arn:") and len(arn.split(":", 5)) == 6):
                yield f"{where}: Resource {arn!r} is not an ARN"
    limit = POLICY_SIZE.get(r.type)
    if limit and len(re.sub(r"\s", "", raw if isinstance(raw, str) else json.dumps(raw))) > limit:
        yield f"{key}: longer than {limit} characters (whitespace not counted)"


def _partition(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    expected = partition_of(stack.region(r)).name
    for text in _strings(r.inputs):
        for found in re.findall(r"\barn:([a-z-]+):", text):
            if found != expected:
                yield (
                    f"an ARN of partition {found!r} in a resource of {stack.region(r)} (partition {expected!r}): "
                    "no such principal, policy or resource there"
                )
                return


# --- grants before use ------------------------------------------------------------------

#: Types that use an IAM role as soon as they exist, and the input naming it (directly, or through a function or an
#: instance profile, followed by :func:`_roles_behind`).
ROLE_USERS: dict[str, tuple[str, ...]] = {
    FUNCTION: ("role",),
    "aws:lambda/invocation:Invocation": ("functionName",),
    INSTANCE: ("monitoringRoleArn",),
    "aws:rds/proxy:Proxy": ("roleArn",),
    "aws:ec2/flowLog:FlowLog": ("iamRoleArn",),
    "aws:ec2/instance:Instance": ("iamInstanceProfile",),
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": ("role",),
}


def _roles_behind(stack: Stack, urns: Iterable[str], depth: int = 3) -> set[str]:
    roles: set[str] = set()
    for urn in urns:
        used = stack.by_urn.get(urn)
        if used is None:
            continue
        if used.type == ROLE:
            roles.add(urn)
        elif depth:
            roles |= _roles_behind(stack, [u for deps in used.property_dependencies.values() for u in deps], depth - 1)
    return roles


def _grants_first(r: RegisteredResource, stack: Stack) -> Iterator[str]:
    inputs = [u for key in ROLE_USERS[r.type] for u in r.property_dependencies.get(key, [])]
    waits_for = stack.depends_on(r)
    for role in sorted(_roles_behind(stack, inputs)):
        grants = [
            g
            for g in stack.resources
            if g.type in (ROLE_POLICY, ATTACHMENT) and role in g.property_dependencies.get("role", [])
        ]
        missing = [g.name for g in grants if g.urn not in waits_for]
        if missing:
            yield (
                f"uses role {stack.by_urn[role].name} without waiting for its grants {', '.join(missing)}: IAM is "
                "eventually consistent, and AWS checks the role's permissions when this is created or runs (the "
                "provider retries RDS's monitoring check for a while; a Lambda invocation, not at all)"
            )


# --- the table --------------------------------------------------------------------------


def _names(r: RegisteredResource, _stack: Stack) -> Iterator[str]:
    rule = NAME_RULES[r.type]
    name, autonamed = physical_name(r.type, r.name, r.inputs)
    if name is None:
        return
    yield from (
        f"{'autonamed ' if autonamed else ''}{rule.field} {name!r}: {problem}" for problem in rule.problems(name)
    )


AWS_RULES: tuple[AwsRule, ...] = (
    AwsRule(
        "rds-replica-backups",
        (INSTANCE,),
        f"{RDS_UG}, Working with read replicas for RDS for PostgreSQL (limitations: automated backups of a "
        f"replica need 14.1); {TF_AWS} internal/service/rds/instance.go (create: ModifyDBInstance with "
        "BackupRetentionPeriod after CreateDBInstanceReadReplica)",
        _replica_backups,
    ),
    AwsRule(
        "rds-replica-inputs",
        (INSTANCE,),
        f"{RDS_UG}, Password management with Secrets Manager (limitations: read replicas); "
        f"hashicorp/terraform-provider-aws#40188; {TF_AWS} internal/service/rds/instance.go (ConflictsWith "
        "replicate_source_db)",
        _replica_fields,
    ),
    AwsRule(
        "rds-replica-source-backups",
        (INSTANCE,),
        f"{RDS_API}, CreateDBInstanceReadReplica (the source must have automated backups) and ModifyDBInstance "
        "(BackupRetentionPeriod: can't be 0 for a source of read replicas)",
        _replica_source_backups,
    ),
    AwsRule(
        "rds-multi-az-zone",
        (INSTANCE,),
        f"{RDS_API}, CreateDBInstance (AvailabilityZone: can't be specified if MultiAZ is true)",
        _multi_az_zone,
    ),
    AwsRule(
        "rds-monitoring",
        (INSTANCE,),
        f"{RDS_API}, ModifyDBInstance (MonitoringInterval, MonitoringRoleArn); {TF_AWS} "
        "internal/service/rds/instance.go (monitoring_interval IntInSlice)",
        _monitoring,
    ),
    AwsRule(
        "rds-insights-retention",
        (INSTANCE,),
        f"{RDS_API}, CreateDBInstance (PerformanceInsightsRetentionPeriod); {TF_AWS} "
        "internal/service/rds/instance.go (performance_insights_retention_period)",
        _insights_retention,
    ),
    AwsRule(
        "rds-log-exports",
        (INSTANCE,),
        f"{RDS_API}, CreateDBInstance (EnableCloudwatchLogsExports: RDS for PostgreSQL)",
        _log_exports,
    ),
    AwsRule(
        "rds-backups",
        (INSTANCE,),
        f"{TF_AWS} internal/service/rds/instance.go (backup_retention_period IntBetween(0, 35)); "
        "internal/types/timestamp/timestamp.go (window formats)",
        _backups,
    ),
    AwsRule(
        "rds-storage-autoscaling",
        (INSTANCE,),
        f"{RDS_UG}, Managing capacity automatically with Amazon RDS storage autoscaling (USER_PIOPS.Autoscaling)",
        _autoscaling,
    ),
    AwsRule(
        "rds-final-snapshot",
        (INSTANCE,),
        f"{RDS_API}, DeleteDBInstance (FinalDBSnapshotIdentifier; not for a read replica); {TF_AWS} "
        "internal/service/rds/instance.go (final_snapshot_identifier)",
        _final_snapshot,
    ),
    AwsRule(
        "secret-replicas",
        ("aws:secretsmanager/secret:Secret",),
        "AWS Secrets Manager User Guide, Replicate secrets across Regions (within a partition); API Reference, "
        "ReplicateSecretToRegions (KmsKeyId of the replica's Region)",
        _secret_replicas,
    ),
    AwsRule(
        "rds-event-categories",
        ("aws:rds/eventSubscription:EventSubscription",),
        f"{RDS_UG}, Amazon RDS event categories and event messages (USER_Events.Messages)",
        _event_categories,
    ),
    AwsRule(
        "metric-alarm",
        (ALARM,),
        f"Amazon CloudWatch API Reference, PutMetricAlarm (Metrics, Period) and MetricDataQuery; {TF_AWS} "
        "internal/service/cloudwatch/metric_alarm.go (ConflictsWith metric_query, CustomizeDiff)",
        _alarm,
    ),
    AwsRule(
        "log-retention",
        ("aws:cloudwatch/logGroup:LogGroup",),
        "Amazon CloudWatch Logs API Reference, PutRetentionPolicy (retentionInDays)",
        _retention,
    ),
    AwsRule(
        "kms-key",
        ("aws:kms/key:Key",),
        "AWS KMS API Reference, ScheduleKeyDeletion (PendingWindowInDays 7-30) and EnableKeyRotation "
        "(RotationPeriodInDays 90-2560)",
        _key,
    ),
    AwsRule(
        "secret-recovery-window",
        ("aws:secretsmanager/secret:Secret",),
        "AWS Secrets Manager API Reference, DeleteSecret (RecoveryWindowInDays 7-30)",
        _secret,
    ),
    AwsRule(
        "rds-parameters",
        (PARAMETER_GROUP,),
        f"{RDS_API}, ModifyDBParameterGroup (Parameters: immediate for dynamic parameters only); {RDS_UG}, "
        "Working with parameters on your RDS for PostgreSQL DB instance",
        _parameters,
    ),
    AwsRule(
        "lambda-reserved-concurrency",
        (FUNCTION,),
        "AWS Lambda Developer Guide, Configuring reserved concurrency (keeps 100 unreserved) and Lambda quotas "
        "(new accounts have reduced concurrency)",
        _reserved_concurrency,
    ),
    AwsRule(
        "lambda-limits", (FUNCTION,), "AWS Lambda Developer Guide, Lambda quotas (timeout, memory)", _function_limits
    ),
    AwsRule(
        "policy-document",
        tuple(POLICY_INPUTS),
        "IAM User Guide, IAM JSON policy element reference and IAM and AWS STS quotas",
        _policy_document,
    ),
    AwsRule(
        "arn-partition",
        (),
        "AWS General Reference, Amazon Resource Names (partition: aws, aws-cn, aws-us-gov)",
        _partition,
    ),
    AwsRule(
        "grants-before-use",
        tuple(ROLE_USERS),
        "IAM User Guide, Troubleshooting IAM (changes that I make are not always immediately visible)",
        _grants_first,
    ),
    AwsRule("names", tuple(NAME_RULES), "per type: components/names.py NAME_RULES", _names),
)


def refusals(plan: Plan, rules: Sequence[AwsRule] = AWS_RULES) -> list[Refusal]:
    """Every refusal of ``rules`` for what ``plan`` registered: empty when ``pulumi up`` would accept it."""
    stack = Stack(plan)
    found = []
    for resource in stack.resources:
        if not resource.custom:
            continue
        for rule in rules:
            if rule.types and resource.type not in rule.types:
                continue
            source = NAME_RULES[resource.type].source if rule.id == "names" else rule.source
            found += [
                Refusal(resource.name, resource.type, rule.id, message, source)
                for message in rule.check(resource, stack)
            ]
    return found
