"""The stack's configuration: the only reader of ``pulumi.Config``.

Every ``pgha:*`` key is declared once, here, as a field of :class:`StackKeys` (a pydantic model): its
type, range, default and description. Pulumi hands every value as a string (``"true"``, ``"5"``, JSON
for lists and maps), so each field takes that string and no looser spelling of it. :func:`parse_config`
validates the keys, then the rules between keys, and raises one :class:`ConfigError` listing every
problem before a single resource is registered, so a typo never half-applies a stack. The README's
configuration table is generated from the same fields (``python -m pgha.ci.config_table``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from components.dr import DrReplicaArgs
from components.kms import stack_prefix
from components.names import stack_name_problems
from components.network import NetworkArgs
from components.partitions import SUPPORTED_PARTITIONS, partition_of
from components.rds import RdsPostgresArgs

NAMESPACE = "pgha"

Engine = Literal["rds", "patroni"]
SchemaRunner = Literal["lambda", "off"]
ENGINES: tuple[str, ...] = get_args(Engine)
SCHEMA_RUNNERS: tuple[str, ...] = get_args(SchemaRunner)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 24 * 60
_MINUTES_PER_WEEK = 7 * _MINUTES_PER_DAY
#: ``environment`` tag values (any case) that make a stack production: the same set the policy pack's
#: ``is_production`` reads from the provider's default tags (``pgha.ci.policy.common.PRODUCTION``; a test
#: keeps the two equal, since the policy pack imports nothing from ``components``).
PRODUCTION_ENVIRONMENTS = frozenset({"prod", "production"})


class ConfigError(ValueError):
    """Raised when stack config is invalid; ``problems`` lists one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid pgha stack config:\n" + "\n".join(f"  - {p}" for p in problems))


# --- value types. Pulumi holds every value as a string; each type takes exactly one spelling of it.
# Digits are [0-9], never \d: in a str pattern \d is any Unicode digit (Arabic-Indic, full-width...),
# which int() converts.


def _from_pulumi_bool(raw: Any) -> Any:
    """Pulumi's ``true``/``false`` as a bool; anything else is left for the strict bool to refuse."""
    return {"true": True, "false": False}.get(raw, raw) if isinstance(raw, str) else raw


def _from_pulumi_int(raw: Any) -> Any:
    """Pulumi's digits as an int; the field's ``ge``/``le`` then check the range."""
    if not isinstance(raw, str):
        return raw
    if not re.fullmatch(r"-?[0-9]+", raw.strip()):
        raise PydanticCustomError("ascii_int", "must be a whole number in the digits 0-9")
    return int(raw)


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise PydanticCustomError("odd_number", "must be an odd number")
    return value


#: A boolean: exactly ``true`` or ``false`` (not ``yes``, ``1`` or ``True``).
PulumiBool = Annotated[bool, BeforeValidator(_from_pulumi_bool), Strict()]
#: A whole number in the digits 0-9; its range is the field's ``ge``/``le``.
PulumiInt = Annotated[int, BeforeValidator(_from_pulumi_int), Strict()]
#: Inside a JSON object (``pgha:patroni``): a JSON number or boolean, never a string of one.
JsonInt = Annotated[int, Strict()]
JsonBool = Annotated[bool, Strict()]


def _matching(pattern: str, what: str) -> BeforeValidator:
    """A string that matches ``pattern`` as a whole; ``what`` says what is allowed."""

    def check(raw: object) -> str:
        if not isinstance(raw, str) or not re.fullmatch(pattern, raw):
            raise ValueError(f"must be {what}")
        return raw

    return BeforeValidator(check)


#: An AWS region name (``eu-west-1``): ASCII letters and digits only.
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]"
_REGION = _matching(REGION_PATTERN, "an AWS region such as eu-west-1")


def _json(raw: str, kind: type, what: str) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"must be {what}") from None
    if not isinstance(value, kind):
        raise ValueError(f"must be {what}")
    return value


def _parse_cidr(raw: str) -> str:
    try:
        net = ipaddress.ip_network(raw, strict=True)
    except ValueError:
        raise ValueError(f"{raw!r} is not a valid CIDR block (e.g. 10.0.0.0/16)") from None
    return str(net)


#: Where a VPC's IPv4 block may come from: RFC 1918 and the shared address space (RFC 6598), which AWS
#: VPCs accept. ``is_private`` would also take loopback, link-local and reserved blocks.
VPC_RANGES = tuple(
    ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def _parse_vpc_cidr(raw: str) -> str:
    """A /16 to /24 IPv4 block inside one of :data:`VPC_RANGES`."""
    cidr = _parse_cidr(raw)
    net = ipaddress.ip_network(cidr)
    inside = net.version == 4 and any(net.subnet_of(block) for block in VPC_RANGES)
    if not inside or not 16 <= net.prefixlen <= 24:
        ranges = ", ".join(map(str, VPC_RANGES[:-1])) + f" or {VPC_RANGES[-1]}"
        raise ValueError(f"must be a /16 to /24 IPv4 block inside {ranges} (e.g. 10.40.0.0/16)")
    return cidr


def _parse_allowed_cidrs(raw: str) -> tuple[str, ...]:
    """IPv4 blocks (the VPC and its security group rules are IPv4-only), none the whole internet, none twice."""
    items = _json(raw, list, 'a list of CIDR blocks, e.g. ["10.0.0.0/16"]')
    cidrs: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a CIDR string")
        cidr = _parse_cidr(item)  # normalised: 10.0.0.5 is 10.0.0.5/32
        net = ipaddress.ip_network(cidr)
        if net.prefixlen == 0:
            raise ValueError(f"{cidr} would open the database to the whole internet; list your networks")
        if net.version != 4:
            raise ValueError(f"{cidr} is an IPv6 block: the VPC pgha builds is IPv4-only; list IPv4 blocks")
        if cidr in cidrs:
            raise ValueError(f"{cidr} is listed twice (AWS refuses a duplicate rule); list each block once")
        cidrs.append(cidr)
    return tuple(cidrs)


def _id_list(prefix: str) -> BeforeValidator:
    """A JSON list of AWS ids (``subnet-…``, ``sg-…``), each once."""

    def parse(raw: str) -> tuple[str, ...]:
        items = _json(raw, list, f'a list of ids, e.g. ["{prefix}-0123456789abcdef0"]')
        for item in items:
            if not isinstance(item, str) or not re.fullmatch(rf"{prefix}-[0-9a-f]{{8,17}}", item):
                raise ValueError(f"{item!r} is not a {prefix} id ({prefix}- and 8 to 17 hex digits)")
        if len(set(items)) != len(items):
            raise ValueError("lists an id twice")
        return tuple(items)

    return BeforeValidator(parse)


def _parse_tags(raw: str) -> dict[str, str]:
    tags = _json(raw, dict, 'a map of strings, e.g. {"team": "data"}')
    for key, value in tags.items():
        if not isinstance(value, str) or not key or len(key) > 128 or len(value) > 256:
            raise ValueError(f"tag {key!r} must map a 1-128 character key to a string of at most 256")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag {key!r}: the aws: prefix is reserved by AWS")
    return tags


def _parse_hhmm(text: str) -> int:
    match = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])", text)
    if not match:
        raise ValueError
    return int(match[1]) * 60 + int(match[2])


def parse_backup_window(raw: str) -> tuple[int, int]:
    """Return the daily backup window as (start, length) in minutes after midnight UTC."""
    try:
        start, end = (_parse_hhmm(part) for part in raw.split("-"))
    except ValueError:
        raise ValueError("must be hh:mm-hh:mm in UTC, e.g. 03:00-04:00") from None
    length = (end - start) % _MINUTES_PER_DAY
    if length < 30:
        raise ValueError("must last at least 30 minutes")
    return start, length


def parse_maintenance_window(raw: str) -> tuple[int, int]:
    """Return the weekly maintenance window as (start, length) in minutes after Monday 00:00 UTC."""
    match = re.fullmatch(r"([a-z]{3}):([0-9]{2}:[0-9]{2})-([a-z]{3}):([0-9]{2}:[0-9]{2})", raw.lower())
    try:
        if not match or match[1] not in DAYS or match[3] not in DAYS:
            raise ValueError
        start = DAYS.index(match[1]) * _MINUTES_PER_DAY + _parse_hhmm(match[2])
        end = DAYS.index(match[3]) * _MINUTES_PER_DAY + _parse_hhmm(match[4])
    except ValueError:
        raise ValueError("must be ddd:hh:mm-ddd:hh:mm in UTC, e.g. sun:05:00-sun:06:00") from None
    length = (end - start) % _MINUTES_PER_WEEK
    if length < 30:
        raise ValueError("must last at least 30 minutes")
    return start, length


def windows_overlap(backup: tuple[int, int], maintenance: tuple[int, int]) -> bool:
    """True when the weekly maintenance window meets any day's backup window."""
    m_start, m_len = maintenance
    for day in range(7):
        b_start = day * _MINUTES_PER_DAY + backup[0]
        for shift in (-_MINUTES_PER_WEEK, 0, _MINUTES_PER_WEEK):
            start = b_start + shift
            if start < m_start + m_len and m_start < start + backup[1]:
                return True
    return False


def _json_object(raw: Any) -> Any:
    """``pgha:patroni`` as Pulumi holds it (JSON text) decoded; the model then checks each key."""
    if isinstance(raw, str):
        return _json(raw, dict, 'an object, e.g. {"nodes": 3, "instanceType": "m7g.large"}')
    return raw


#: The keys are the fields' names in camelCase (``postgres_version`` is ``pgha:postgresVersion``).
_KEYS_CONFIG = ConfigDict(
    extra="forbid", frozen=True, alias_generator=to_camel, validate_by_name=True, validate_by_alias=True
)


class PatroniSettings(BaseModel):
    """The self-managed path (``pgha:patroni``, a JSON object). Timing defaults are Patroni's own."""

    model_config = _KEYS_CONFIG

    nodes: Annotated[JsonInt, AfterValidator(_odd)] = Field(
        default=3, ge=3, le=7, description="members, spread round-robin over the subnets' AZs"
    )
    instance_type: Annotated[
        str, _matching(r"[a-z][a-z0-9-]*\.[a-z0-9]+", "an EC2 instance type such as m7g.large")
    ] = Field(default="m7g.large", description="an EC2 type (Graviton types get the arm64 AMI)")
    volume_size: JsonInt = Field(default=100, ge=20, le=16384, description="GiB of gp3 per node")
    ttl: JsonInt = Field(
        default=30,
        ge=20,
        le=600,
        description="seconds the leader lock lives: an unplanned failover waits for it to expire",
    )
    loop_wait: JsonInt = Field(
        default=10,
        ge=1,
        le=300,
        description="seconds between Patroni's loops; Patroni's rule loopWait + 2·retryTimeout ≤ ttl must hold "
        "(`PatroniTiming`, which a node's own file and the lab also obey, caps ttl at 3600)",
    )
    retry_timeout: JsonInt = Field(
        default=10, ge=3, le=300, description="seconds Patroni retries etcd and PostgreSQL before demoting"
    )
    synchronous_mode: JsonBool = Field(default=True, description="a synchronous standby")
    synchronous_mode_strict: JsonBool = Field(
        default=False, description="no writes without a synchronous standby; needs synchronousMode"
    )
    backup_tool: Literal["pgbackrest"] = Field(default="pgbackrest", description="`pgbackrest` (WAL-G is not offered)")
    backup_retention: JsonInt = Field(default=14, ge=1, le=365, description="days of backups kept")

    @model_validator(mode="after")
    def _rules_between_keys(self) -> PatroniSettings:
        """Patroni's timing rule and synchronous mode, once every key is valid: a ConfigError of them all."""
        from pgha.node.render import PatroniTiming

        problems = [f"timing: {p}" for p in PatroniTiming(self.ttl, self.loop_wait, self.retry_timeout).problems()]
        if self.synchronous_mode_strict and not self.synchronous_mode:
            problems.append("synchronousModeStrict = true needs synchronousMode = true")
        if problems:
            raise ConfigError(problems)
        return self


class StackKeys(BaseModel):
    """Every ``pgha:*`` key, declared: type, range, default (the secure choice) and what it means.

    Each field's description is its row in the README's configuration table. Defaults come from the
    components' Args, which hold the secure defaults. Field order is the order problems are reported in.
    """

    model_config = _KEYS_CONFIG

    engine: Engine = Field(
        default="rds", description="`rds` (Multi-AZ RDS) or `patroni` (Patroni + etcd on EC2, see below)"
    )
    postgres_version: PulumiInt = Field(
        default=RdsPostgresArgs.postgres_version,
        ge=14,
        le=18,
        description="major version; a change creates a new parameter group (`<stack>-pg<N>`)",
    )
    instance_class: Annotated[
        str, _matching(r"db\.[a-z0-9]+\.[a-z0-9]+", "an RDS instance class such as db.m7g.large")
    ] = Field(default=RdsPostgresArgs.instance_class, description="an RDS class `db.<family>.<size>`")
    allocated_storage: PulumiInt = Field(
        default=RdsPostgresArgs.allocated_storage, ge=20, le=65536, description="GiB (gp3)"
    )
    max_allocated_storage: PulumiInt = Field(
        default=RdsPostgresArgs.max_allocated_storage,
        ge=0,
        le=65536,
        description="storage autoscaling ceiling; `0` = off, else ≥ 110% of allocatedStorage, rounded up (RDS "
        "refuses a smaller ceiling: 1000 GiB needs ≥ 1100)",
    )
    multi_az: PulumiBool = Field(default=RdsPostgresArgs.multi_az, description="synchronous standby in another AZ")
    replicas: PulumiInt = Field(
        default=RdsPostgresArgs.replicas,
        ge=0,
        le=5,
        description="same-region read replicas, spread over the subnets' AZs from the second on (see below)",
    )
    dr_region: Annotated[str | None, _REGION] = Field(
        default=None,
        description="≠ `aws:region`. RDS: cross-region DR replica (Multi-AZ in a production stack, see `tags`) "
        "+ automated-backup replication; Patroni: the pgBackRest backup bucket replicates to a "
        "bucket in this region (its own provider and KMS key; `docs/patroni.md`)",
    )
    dr_promoted: PulumiBool = Field(
        default=DrReplicaArgs.promoted,
        description="RDS only: `true` once the DR replica has been promoted (`pgha drill rds promote-dr`): the "
        "program declares it as a standalone primary (below); needs `drRegion`",
    )
    backup_retention_days: PulumiInt = Field(
        default=RdsPostgresArgs.backup_retention_days, ge=1, le=35, description="days of automated backups"
    )
    backup_window: Annotated[str, BeforeValidator(lambda raw: (parse_backup_window(raw), raw)[1])] = Field(
        default=RdsPostgresArgs.backup_window, description="`hh:mm-hh:mm` UTC, ≥ 30 min"
    )
    maintenance_window: Annotated[str, BeforeValidator(lambda raw: (parse_maintenance_window(raw), raw.lower())[1])] = (
        Field(
            default=RdsPostgresArgs.maintenance_window,
            description="`ddd:hh:mm-ddd:hh:mm` UTC, ≥ 30 min, must not overlap any day's backup window",
        )
    )
    deletion_protection: PulumiBool = Field(
        default=RdsPostgresArgs.deletion_protection,
        description="also takes a final snapshot on delete (`<stack>-primary-final-<8 hex>`, drawn anew for each "
        "instance: RDS refuses a snapshot name that exists, so a fixed one would fail the second "
        "deletion), and Pulumi-`protect`s the stateful resources (below)",
    )
    vpc_cidr: Annotated[str | None, BeforeValidator(_parse_vpc_cidr)] = Field(
        default=NetworkArgs.vpc_cidr,
        description="create a private VPC over 3 AZs: an IPv4 /16 to /24 inside `10.0.0.0/8`, `172.16.0.0/12`, "
        "`192.168.0.0/16` (RFC 1918) or `100.64.0.0/10` (shared address space)",
    )
    dr_vpc_cidr: Annotated[str, BeforeValidator(_parse_vpc_cidr)] = Field(
        default=DrReplicaArgs.vpc_cidr,
        description="RDS only: VPC created for the DR replica (same rule as `vpcCidr`); without `drRegion` it is "
        "ignored, with a warning",
    )
    vpc_id: Annotated[str | None, _matching(r"vpc-[0-9a-f]{8,17}", "a VPC id such as vpc-0123456789abcdef0")] = Field(
        default=None, description="bring your own VPC, with `subnetIds` (excludes `vpcCidr`)"
    )
    subnet_ids: Annotated[tuple[str, ...], _id_list("subnet")] = Field(
        default=(), description="with `vpcId`: ≥ 2 private subnets in ≥ 2 AZs"
    )
    allowed_cidrs: Annotated[tuple[str, ...], BeforeValidator(_parse_allowed_cidrs)] = Field(
        default=(),
        description="IPv4 CIDRs that may reach 5432, each once (`10.0.0.5` counts as `10.0.0.5/32`); "
        "`0.0.0.0/0` is refused, and so is IPv6 (the VPC is IPv4-only). Each block's security-group "
        "rules are named after it (`…-from-10-40-0-0-16`), so removing or reordering one touches "
        "only its own rules. Stacks whose rules were named by position (`…-from-cidr-0`) keep them "
        "through aliases: run the first `pulumi up` of this version with the list unchanged (no "
        "change), and edit the list afterwards",
    )
    allowed_security_group_ids: Annotated[tuple[str, ...], _id_list("sg")] = Field(
        default=(), description="security groups that may reach 5432"
    )
    alarm_email: Annotated[str | None, _matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address")] = Field(
        default=None, description="email subscribed to the alarm topic"
    )
    proxy: PulumiBool = Field(
        default=False, description="RDS Proxy in front of the primary (TLS and IAM auth required)"
    )
    max_connections: PulumiInt = Field(
        default=RdsPostgresArgs.max_connections,
        ge=20,
        le=5000,
        description="`max_connections`; the connections alarm fires at 80% of it",
    )
    schema_runner: SchemaRunner = Field(default="lambda", description="post-deploy schema hook: `lambda` or `off`")
    # Lambda keeps at least 100 of an account's concurrency unreserved: at the default quota of 1000 at most
    # 900 can be reserved (Lambda Developer Guide, "Configuring reserved concurrency")
    schema_reserved_concurrency: PulumiInt | None = Field(
        default=None,
        ge=1,
        le=900,
        description="reserved concurrency of the schema hook's function; unset reserves none. Lambda "
        "refuses a reservation that leaves the account less than its minimum unreserved concurrency "
        "(100 at the default quota of 1000; new accounts with a quota of 10 or 50 can reserve none), "
        "and the migrations' advisory lock already serializes runs",
    )
    tags: Annotated[dict[str, str], BeforeValidator(_parse_tags)] = Field(
        default_factory=dict,
        description="extra tags on every resource (through the provider's default tags); `environment: prod` or "
        "`production` (any case) makes the stack production: the policy pack's production rules are "
        "mandatory and the DR replica is Multi-AZ",
    )
    patroni: Annotated[PatroniSettings, BeforeValidator(_json_object)] = Field(
        default_factory=PatroniSettings,
        description="engine `patroni` only (still validated, and ignored with a warning on engine `rds`); its "
        "keys, ranges and defaults are in `docs/patroni.md`",
    )


#: The ``pgha:*`` keys, in the order problems are reported in.
KEYS: tuple[str, ...] = tuple(field.alias or name for name, field in StackKeys.model_fields.items())
PATRONI_KEYS: tuple[str, ...] = tuple(field.alias or name for name, field in PatroniSettings.model_fields.items())


class StackConfig(StackKeys):
    """Everything the program needs to know about one stack, validated: its keys, and whose stack it is.

    Defaults are the secure choice: Multi-AZ, deletion protection, a week of
    backups, nothing reachable until ``allowedCidrs`` says so.
    """

    project: str
    stack: str
    region: str
    #: Valid but worth telling the user (e.g. settings the chosen engine ignores).
    warnings: tuple[str, ...] = ()

    @property
    def name_prefix(self) -> str:
        """Physical-name prefix shared by every resource of this stack (e.g. ``pgha-prod``)."""
        return stack_prefix(self.project, self.stack)

    @property
    def all_tags(self) -> dict[str, str]:
        """The user's tags plus the ones pgha always sets."""
        return {"pgha:project": self.project, "pgha:stack": self.stack, **self.tags}

    @property
    def production(self) -> bool:
        """Whether this is a production stack: its ``environment`` tag (``pgha:tags``) is prod or production.

        The policy pack decides the same way from the provider's default tags, which carry these tags.
        """
        return str(self.all_tags.get("environment", "")).lower() in PRODUCTION_ENVIRONMENTS


# --- reporting: one line per problem, naming the key, the value and what is allowed.


def _shown(raw: str) -> str:
    return raw if len(raw) <= 80 else raw[:77] + "..."


def _allowed(error: ErrorDetails, field: FieldInfo) -> str:
    """What the field allows, in the words of the rule ``error`` broke (ranges read from the field's ge/le)."""
    kind = error["type"]
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error"))
    if kind == "bool_type":
        return "must be true or false"
    if kind == "literal_error":
        return "must be one of " + ", ".join(get_args(field.annotation))
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    odd = any(getattr(m, "func", None) is _odd for m in field.metadata)
    if kind == "ascii_int":
        return f"must be a whole number from {low} to {high}, in the digits 0-9"
    if kind == "int_type":
        return f"must be a whole number from {low} to {high}"
    if kind in ("odd_number", "greater_than_equal", "less_than_equal"):
        return f"must be {'an odd number ' if odd else ''}from {low} to {high}"
    return error["msg"]


def _key_problems(error: ErrorDetails, given: Mapping[str, str]) -> list[str]:
    """The report lines for one pydantic error about the ``pgha:*`` keys (``pgha:patroni.<key>`` inside it)."""
    key, *inner = error["loc"]
    if error["type"] == "extra_forbidden":
        if inner:
            return [f"{NAMESPACE}:{key}.{inner[0]} is not a Patroni setting (known: {', '.join(PATRONI_KEYS)})"]
        return [f"{NAMESPACE}:{key} is not a pgha setting (known: {', '.join(KEYS)})"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, ConfigError):  # PatroniSettings' rules between its keys
        return [f"{NAMESPACE}:{key}.{p}" for p in cause.problems]
    if inner:
        field = PatroniSettings.model_fields[_field_name(PatroniSettings, str(inner[0]))]
        return [f"{NAMESPACE}:{key}.{inner[0]} = {json.dumps(error['input'])}: {_allowed(error, field)}"]
    field = StackKeys.model_fields[_field_name(StackKeys, str(key))]
    return [f"{NAMESPACE}:{key} = {_shown(given[str(key)])!r}: {_allowed(error, field)}"]


def _field_name(model: type[BaseModel], key: str) -> str:
    return next(name for name, field in model.model_fields.items() if field.alias == key)


def parse_config(raw: Mapping[str, str], *, project: str, stack: str, region: str | None) -> StackConfig:
    """Validate raw ``pgha:*`` values (keys without the namespace) into a StackConfig.

    Values are the strings Pulumi holds; a None value counts as unset. Raises ConfigError naming every
    bad key, its value and what is allowed; the rules between keys are checked once each key is valid.
    """
    given = {key: str(value) for key, value in raw.items() if value is not None}
    problems: list[str] = []
    keys = None
    try:
        keys = StackKeys.model_validate(given, by_alias=True, by_name=False)
    except ValidationError as err:
        # unknown keys first, then the fields in their declared order
        errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
        problems += [p for e in errors for p in _key_problems(e, given)]

    if not region:
        problems.append("aws:region is not set: run `pulumi config set aws:region <region>`")
    elif not re.fullmatch(REGION_PATTERN, region):
        problems.append(f"aws:region = {region!r}: must be an AWS region such as eu-west-1")
    dr_region = given.get("drRegion", "")
    problems += _partition_problems(region, dr_region if re.fullmatch(REGION_PATTERN, dr_region) else None)
    engine = given.get("engine", "rds")
    problems += _stack_name_problems(project, stack, engine if engine in ENGINES else "rds")
    if keys is not None and not problems:  # rules between keys only once each key is valid
        problems.extend(_cross_checks(keys, region))
    if keys is None or problems:
        raise ConfigError(problems)
    values = dict(keys)
    if "vpc_id" in keys.model_fields_set:
        values["vpc_cidr"] = None
    return StackConfig.model_construct(
        keys.model_fields_set,
        project=project,
        stack=stack,
        region=str(region),
        warnings=_ignored_warnings(keys),
        **values,
    )


def _partition_problems(region: str | None, dr_region: str | None) -> list[str]:
    """Regions of a partition pgha does not build in: there VPC endpoint service names
    (``cn.com.amazonaws.<region>.<service>``) and some service principals (``ec2.amazonaws.com.cn``) differ."""
    problems = []
    for key, value in (("aws:region", region), (f"{NAMESPACE}:drRegion", dr_region)):
        partition = partition_of(value or "").name
        if partition not in SUPPORTED_PARTITIONS:
            problems.append(
                f"{key} = {value!r}: pgha builds in the aws and aws-us-gov partitions, not {partition} "
                "(its endpoint service names and service principals differ)"
            )
    return problems


def longest_stack_name(project: str, engine: str) -> int:
    """The most characters a stack name of this project may have on this engine (every derived name then fits)."""
    return max((n for n in range(1, 64) if not stack_name_problems(stack_prefix(project, "a" * n), engine)), default=0)


def _stack_name_problems(project: str, stack: str, engine: str) -> list[str]:
    """The project and stack name make every physical name: the first that AWS would refuse, named."""
    if engine not in ENGINES:
        return []
    prefix = stack_prefix(project, stack)
    problems = stack_name_problems(prefix, engine)
    if not problems:
        return []
    return [
        f"stack {stack!r} (project {project!r}) names resources {prefix}-...: AWS refuses {problems[0]}; use "
        f"at most {longest_stack_name(project, engine)} lowercase letters, digits and single hyphens "
        f"(engine {engine})"
    ]


#: Keys only the RDS engine reads; with engine patroni they are reported as ignored. ``drRegion`` is
#: read by both: with patroni it replicates the backup bucket (there is no DR replica instance, so
#: ``drVpcCidr`` and ``drPromoted`` stay RDS-only).
RDS_ONLY = (
    "instanceClass",
    "allocatedStorage",
    "maxAllocatedStorage",
    "multiAz",
    "replicas",
    "drPromoted",
    "drVpcCidr",
    "backupRetentionDays",
    "backupWindow",
    "maintenanceWindow",
    "proxy",
)
#: RDS-only keys about the DR replica instance, which engine patroni does not build.
DR_REPLICA_ONLY = ("drPromoted", "drVpcCidr")


def _given(keys: StackKeys) -> set[str]:
    """The keys the stack sets (by their ``pgha:*`` names), as opposed to those left at their defaults."""
    return {StackKeys.model_fields[name].alias or name for name in keys.model_fields_set}


def _ignored_warnings(keys: StackKeys) -> tuple[str, ...]:
    """Warnings naming keys that are set but that nothing reads with this config, so a setting never
    silently does nothing: the RDS-only keys with engine patroni, ``patroni`` with engine rds, and
    ``drVpcCidr`` without a ``drRegion`` (there is no DR replica whose VPC it would be)."""
    given = _given(keys)
    if keys.engine != "patroni":
        warnings = []
        if "patroni" in given:
            warnings.append(
                f"engine rds ignores {NAMESPACE}:patroni (the Patroni engine's settings); "
                f"set {NAMESPACE}:engine to patroni to use them, or remove the key"
            )
        if "drVpcCidr" in given and not keys.dr_region:
            warnings.append(
                f"{NAMESPACE}:drVpcCidr = {keys.dr_vpc_cidr!r} is ignored: it is the VPC of the DR "
                f"replica, and without {NAMESPACE}:drRegion there is none"
            )
        return tuple(warnings)
    ignored = [key for key in RDS_ONLY if key in given]
    if not ignored:
        return ()
    dr_note = (
        "; with patroni there is no DR replica instance: drRegion replicates the backup bucket only"
        if set(ignored) & set(DR_REPLICA_ONLY)
        else ""
    )
    return (f"engine patroni ignores the RDS-only {', '.join(f'{NAMESPACE}:{k}' for k in ignored)}{dr_note}",)


def _cross_checks(keys: StackKeys, region: str | None) -> list[str]:
    """Rules that involve more than one key; those about RDS-only keys only for an engine that reads them
    (engine patroni ignores the :data:`RDS_ONLY` keys: they are neither used nor cross-checked)."""
    rds = _rds_cross_checks(keys) if keys.engine != "patroni" else []
    return rds + _shared_cross_checks(keys, region)


def min_autoscaling_ceiling(allocated_storage: int) -> int:
    """The smallest ``maxAllocatedStorage`` RDS accepts for this ``allocatedStorage``: 10% more, rounded up.

    RDS storage autoscaling refuses a maximum storage threshold less than 10% above the allocated
    storage ("Invalid max storage size"; RDS User Guide, USER_PIOPS.Autoscaling: 1000 GiB needs at
    least 1100). Integer arithmetic, so 20 GiB needs exactly 22.
    """
    return -(-allocated_storage * 11 // 10)


def _rds_cross_checks(keys: StackKeys) -> list[str]:
    """Rules about RDS-only keys: storage autoscaling, the promoted DR replica, backup vs maintenance window."""
    problems = []
    max_storage, storage = keys.max_allocated_storage, keys.allocated_storage
    if max_storage and max_storage < min_autoscaling_ceiling(storage):
        problems.append(
            f"{NAMESPACE}:maxAllocatedStorage = {max_storage}: must be 0 (autoscaling off) or at least "
            f"{min_autoscaling_ceiling(storage)} GiB, 10% above allocatedStorage ({storage}): RDS refuses a "
            "smaller ceiling (Invalid max storage size)"
        )
    if keys.dr_promoted and not keys.dr_region:
        problems.append(
            f"{NAMESPACE}:drPromoted = true: needs {NAMESPACE}:drRegion (the region of the promoted "
            "DR replica); without a DR region there is nothing to promote"
        )
    if windows_overlap(parse_backup_window(keys.backup_window), parse_maintenance_window(keys.maintenance_window)):
        problems.append(
            f"{NAMESPACE}:maintenanceWindow = {keys.maintenance_window!r}: overlaps the daily "
            f"backupWindow {keys.backup_window!r}; move one of them"
        )
    return problems


def _shared_cross_checks(keys: StackKeys, region: str | None) -> list[str]:
    """Rules about keys both engines read: the DR region and the network."""
    problems = []
    given = _given(keys)
    if keys.dr_region and keys.dr_region == region:
        problems.append(f"{NAMESPACE}:drRegion = {region!r}: must differ from aws:region")
    has_vpc, has_subnets = "vpcId" in given, "subnetIds" in given
    if has_vpc != has_subnets:
        problems.append(f"{NAMESPACE}:vpcId and {NAMESPACE}:subnetIds go together: set both to bring your own VPC")
    if has_subnets and len(keys.subnet_ids) < 2:
        problems.append(f"{NAMESPACE}:subnetIds: give at least 2 subnets in at least 2 availability zones")
    if has_vpc and "vpcCidr" in given:
        problems.append(f"{NAMESPACE}:vpcCidr and {NAMESPACE}:vpcId exclude each other: create a VPC or bring one")
    return problems


def load_config() -> StackConfig:
    """Read and validate this stack's ``pgha:*`` and ``aws:region`` config from Pulumi."""
    import pulumi

    conf = pulumi.Config(NAMESPACE)
    raw = {key: value for key in KEYS if (value := conf.get(key)) is not None}
    raw.update(_unknown_keys())
    return parse_config(
        raw,
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").get("region"),
    )


def _unknown_keys() -> dict[str, str]:
    """``pgha:*`` keys Pulumi holds that pgha does not know, so typos are reported."""
    from pulumi.runtime.config import CONFIG, get_config_env

    found = {**get_config_env(), **CONFIG.get()}
    return {
        key.split(":", 1)[1]: str(value)
        for key, value in found.items()
        if key.startswith(f"{NAMESPACE}:") and key.split(":", 1)[1] not in KEYS
    }
