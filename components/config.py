"""The stack's configuration: the only reader of ``pulumi.Config``.

Every ``pgha:*`` key is parsed and checked here, at program start, into one typed
:class:`StackConfig`. All problems are collected and raised together as a
:class:`ConfigError` before a single resource is registered, so a typo never
half-applies a stack.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from components.dr import DrReplicaArgs
from components.kms import stack_prefix
from components.names import stack_name_problems
from components.network import NetworkArgs
from components.partitions import SUPPORTED_PARTITIONS, partition_of
from components.rds import RdsPostgresArgs

NAMESPACE = "pgha"

ENGINES = ("rds", "patroni")
SCHEMA_RUNNERS = ("lambda", "off")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 24 * 60
_MINUTES_PER_WEEK = 7 * _MINUTES_PER_DAY
#: ``environment`` tag values (any case) that make a stack production: the same set the policy pack's
#: ``is_production`` reads from the provider's default tags (``pgha.ci.policy.common.PRODUCTION``; a test
#: keeps the two equal, since the policy pack imports nothing from ``components``).
PRODUCTION_ENVIRONMENTS = frozenset({"prod", "production"})


@dataclass(frozen=True)
class PatroniSettings:
    """The self-managed path (``pgha:patroni``). Timing defaults are Patroni's own."""

    nodes: int = 3
    instance_type: str = "m7g.large"
    volume_size: int = 100
    ttl: int = 30
    loop_wait: int = 10
    retry_timeout: int = 10
    synchronous_mode: bool = True
    synchronous_mode_strict: bool = False
    backup_tool: str = "pgbackrest"
    backup_retention: int = 14


class ConfigError(ValueError):
    """Raised when stack config is invalid; ``problems`` lists one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "invalid pgha stack config:\n" + "\n".join(f"  - {p}" for p in problems)
        )


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs to know about one stack, validated.

    Defaults are the secure choice: Multi-AZ, deletion protection, a week of
    backups, nothing reachable until ``allowedCidrs`` says so.
    """

    project: str
    stack: str
    region: str
    engine: str = "rds"
    # The components' Args hold the secure defaults; the config takes them from there.
    postgres_version: int = RdsPostgresArgs.postgres_version
    instance_class: str = RdsPostgresArgs.instance_class
    allocated_storage: int = RdsPostgresArgs.allocated_storage
    max_allocated_storage: int = RdsPostgresArgs.max_allocated_storage
    multi_az: bool = RdsPostgresArgs.multi_az
    replicas: int = RdsPostgresArgs.replicas
    dr_region: str | None = None
    #: The DR replica has been promoted (``pgha drill rds promote-dr``): declare it as a standalone primary.
    dr_promoted: bool = DrReplicaArgs.promoted
    backup_retention_days: int = RdsPostgresArgs.backup_retention_days
    backup_window: str = RdsPostgresArgs.backup_window
    maintenance_window: str = RdsPostgresArgs.maintenance_window
    deletion_protection: bool = RdsPostgresArgs.deletion_protection
    vpc_cidr: str | None = NetworkArgs.vpc_cidr
    dr_vpc_cidr: str = DrReplicaArgs.vpc_cidr
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    allowed_cidrs: tuple[str, ...] = ()
    allowed_security_group_ids: tuple[str, ...] = ()
    alarm_email: str | None = None
    proxy: bool = False
    max_connections: int = RdsPostgresArgs.max_connections
    schema_runner: str = "lambda"
    #: Reserved concurrency of the schema hook's function; None (the default) reserves none.
    schema_reserved_concurrency: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    patroni: PatroniSettings = field(default_factory=PatroniSettings)
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


# --- parsers: each takes the raw string Pulumi holds and returns a value or raises ValueError.
# Digits are [0-9], never \d: in a str pattern \d is any Unicode digit (Arabic-Indic, full-width...),
# which int() converts.


def _parse_bool(raw: str) -> bool:
    if raw in ("true", "false"):
        return raw == "true"
    raise ValueError("must be true or false")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not re.fullmatch(r"-?[0-9]+", raw.strip()):
            raise ValueError(f"must be a whole number from {low} to {high}, in the digits 0-9")
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be from {low} to {high}")
        return value

    return parse


def _one_of(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return raw

    return parse


def _matching(pattern: str, what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not re.fullmatch(pattern, raw):
            raise ValueError(f"must be {what}")
        return raw

    return parse


#: An AWS region name (``eu-west-1``): ASCII letters and digits only.
REGION_PATTERN = r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]"
_parse_region = _matching(REGION_PATTERN, "an AWS region such as eu-west-1")
_parse_instance_class = _matching(r"db\.[a-z0-9]+\.[a-z0-9]+", "an RDS instance class such as db.m7g.large")
_parse_email = _matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address")
_parse_vpc_id = _matching(r"vpc-[0-9a-f]{8,17}", "a VPC id such as vpc-0123456789abcdef0")


def _parse_json(raw: str, kind: type, what: str) -> Any:
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
VPC_RANGES = tuple(ipaddress.IPv4Network(block) for block in
                   ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"))


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
    items = _parse_json(raw, list, 'a list of CIDR blocks, e.g. ["10.0.0.0/16"]')
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


def _parse_id_list(prefix: str) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        items = _parse_json(raw, list, f'a list of ids, e.g. ["{prefix}-0123456789abcdef0"]')
        for item in items:
            if not isinstance(item, str) or not re.fullmatch(rf"{prefix}-[0-9a-f]{{8,17}}", item):
                raise ValueError(f"{item!r} is not a {prefix} id ({prefix}- and 8 to 17 hex digits)")
        if len(set(items)) != len(items):
            raise ValueError("lists an id twice")
        return tuple(items)

    return parse


def _parse_tags(raw: str) -> dict[str, str]:
    tags = _parse_json(raw, dict, 'a map of strings, e.g. {"team": "data"}')
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


def _json_int(low: int, high: int, odd: bool = False) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from {low} to {high}")
        if not low <= value <= high or (odd and value % 2 == 0):
            raise ValueError(f"must be {'an odd number' if odd else 'a number'} from {low} to {high}")
        return value

    return parse


def _json_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _json_instance_type(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
        raise ValueError("must be an EC2 instance type such as m7g.large")
    return value


PATRONI_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "nodes": ("nodes", _json_int(3, 7, odd=True)),
    "instanceType": ("instance_type", _json_instance_type),
    "volumeSize": ("volume_size", _json_int(20, 16384)),
    "ttl": ("ttl", _json_int(20, 600)),
    "loopWait": ("loop_wait", _json_int(1, 300)),
    "retryTimeout": ("retry_timeout", _json_int(3, 300)),
    "synchronousMode": ("synchronous_mode", _json_bool),
    "synchronousModeStrict": ("synchronous_mode_strict", _json_bool),
    "backupTool": ("backup_tool", _one_of("pgbackrest")),
    "backupRetention": ("backup_retention", _json_int(1, 365)),
}


def _parse_patroni(raw: str) -> PatroniSettings:
    """The structured ``pgha:patroni`` object; every problem is reported as ``patroni.<key>``."""
    from pgha.node.render import PatroniTiming

    given = _parse_json(raw, dict, 'an object, e.g. {"nodes": 3, "instanceType": "m7g.large"}')
    problems, values = [], {}
    for key, value in given.items():
        if key not in PATRONI_KEYS:
            problems.append(f"{key} is not a Patroni setting (known: {', '.join(PATRONI_KEYS)})")
            continue
        attr, parse = PATRONI_KEYS[key]
        try:
            values[attr] = parse(value)
        except ValueError as err:
            problems.append(f"{key} = {json.dumps(value)}: {err}")
    if not problems:
        settings = PatroniSettings(**values)
        timing = PatroniTiming(settings.ttl, settings.loop_wait, settings.retry_timeout)
        problems += [f"timing: {p}" for p in timing.problems()]
        if settings.synchronous_mode_strict and not settings.synchronous_mode:
            problems.append("synchronousModeStrict = true needs synchronousMode = true")
    if problems:
        raise ConfigError(problems)
    return settings


#: Keys only the RDS engine reads; with engine patroni they are reported as ignored. ``drRegion`` is
#: read by both: with patroni it replicates the backup bucket (there is no DR replica instance, so
#: ``drVpcCidr`` and ``drPromoted`` stay RDS-only).
RDS_ONLY = ("instanceClass", "allocatedStorage", "maxAllocatedStorage", "multiAz", "replicas",
            "drPromoted", "drVpcCidr", "backupRetentionDays", "backupWindow", "maintenanceWindow", "proxy")
#: RDS-only keys about the DR replica instance, which engine patroni does not build.
DR_REPLICA_ONLY = ("drPromoted", "drVpcCidr")

# key -> (dataclass field, parser). Order is the order errors are reported in.
KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "engine": ("engine", _one_of(*ENGINES)),
    "postgresVersion": ("postgres_version", _int_in(14, 18)),
    "instanceClass": ("instance_class", _parse_instance_class),
    "allocatedStorage": ("allocated_storage", _int_in(20, 65536)),
    "maxAllocatedStorage": ("max_allocated_storage", _int_in(0, 65536)),
    "multiAz": ("multi_az", _parse_bool),
    "replicas": ("replicas", _int_in(0, 5)),
    "drRegion": ("dr_region", _parse_region),
    "drPromoted": ("dr_promoted", _parse_bool),
    "backupRetentionDays": ("backup_retention_days", _int_in(1, 35)),
    "backupWindow": ("backup_window", lambda raw: (parse_backup_window(raw), raw)[1]),
    "maintenanceWindow": ("maintenance_window", lambda raw: (parse_maintenance_window(raw), raw.lower())[1]),
    "deletionProtection": ("deletion_protection", _parse_bool),
    "vpcCidr": ("vpc_cidr", _parse_vpc_cidr),
    "drVpcCidr": ("dr_vpc_cidr", _parse_vpc_cidr),
    "vpcId": ("vpc_id", _parse_vpc_id),
    "subnetIds": ("subnet_ids", _parse_id_list("subnet")),
    "allowedCidrs": ("allowed_cidrs", _parse_allowed_cidrs),
    "allowedSecurityGroupIds": ("allowed_security_group_ids", _parse_id_list("sg")),
    "alarmEmail": ("alarm_email", _parse_email),
    "proxy": ("proxy", _parse_bool),
    "maxConnections": ("max_connections", _int_in(20, 5000)),
    "schemaRunner": ("schema_runner", _one_of(*SCHEMA_RUNNERS)),
    # Lambda keeps at least 100 of an account's concurrency unreserved: at the default quota of 1000 at most
    # 900 can be reserved (Lambda Developer Guide, "Configuring reserved concurrency")
    "schemaReservedConcurrency": ("schema_reserved_concurrency", _int_in(1, 900)),
    "tags": ("tags", _parse_tags),
    "patroni": ("patroni", _parse_patroni),
}


def _shown(raw: str) -> str:
    return raw if len(raw) <= 80 else raw[:77] + "..."


def parse_config(raw: Mapping[str, str], *, project: str, stack: str, region: str | None) -> StackConfig:
    """Validate raw ``pgha:*`` values (keys without the namespace) into a StackConfig.

    Raises ConfigError naming every bad key, its value and what is allowed.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in raw:
        if key not in KEYS:
            problems.append(f"{NAMESPACE}:{key} is not a pgha setting (known: {', '.join(KEYS)})")
    for key, (attr, parse) in KEYS.items():
        if key not in raw or raw[key] is None:
            continue
        try:
            values[attr] = parse(str(raw[key]))
        except ConfigError as err:
            problems.extend(f"{NAMESPACE}:{key}.{p}" for p in err.problems)
        except ValueError as err:
            problems.append(f"{NAMESPACE}:{key} = {_shown(str(raw[key]))!r}: {err}")

    if not region:
        problems.append("aws:region is not set: run `pulumi config set aws:region <region>`")
    elif not re.fullmatch(REGION_PATTERN, region):
        problems.append(f"aws:region = {region!r}: must be an AWS region such as eu-west-1")
    problems += _partition_problems(region, values.get("dr_region"))
    problems += _stack_name_problems(project, stack, values.get("engine", "rds"))
    if not problems:  # rules between keys only once each key is valid: a rejected key is not its default
        problems.extend(_cross_checks(values, region))
    if problems:
        raise ConfigError(problems)
    if "vpc_id" in values:
        values["vpc_cidr"] = None
    values["warnings"] = _ignored_warnings(values)
    return StackConfig(project=project, stack=stack, region=str(region), **values)


def _partition_problems(region: str | None, dr_region: str | None) -> list[str]:
    """Regions of a partition pgha does not build in: there VPC endpoint service names
    (``cn.com.amazonaws.<region>.<service>``) and some service principals (``ec2.amazonaws.com.cn``) differ."""
    problems = []
    for key, value in (("aws:region", region), (f"{NAMESPACE}:drRegion", dr_region)):
        partition = partition_of(value or "").name
        if partition not in SUPPORTED_PARTITIONS:
            problems.append(f"{key} = {value!r}: pgha builds in the aws and aws-us-gov partitions, not {partition} "
                            "(its endpoint service names and service principals differ)")
    return problems


def longest_stack_name(project: str, engine: str) -> int:
    """The most characters a stack name of this project may have on this engine (every derived name then fits)."""
    return max((n for n in range(1, 64) if not stack_name_problems(stack_prefix(project, "a" * n), engine)),
               default=0)


def _stack_name_problems(project: str, stack: str, engine: str) -> list[str]:
    """The project and stack name make every physical name: the first that AWS would refuse, named."""
    if engine not in ENGINES:
        return []
    prefix = stack_prefix(project, stack)
    problems = stack_name_problems(prefix, engine)
    if not problems:
        return []
    return [f"stack {stack!r} (project {project!r}) names resources {prefix}-...: AWS refuses {problems[0]}; use "
            f"at most {longest_stack_name(project, engine)} lowercase letters, digits and single hyphens "
            f"(engine {engine})"]


def _reads_rds_keys(values: Mapping[str, Any]) -> bool:
    """False for engine patroni, which ignores the :data:`RDS_ONLY` keys: they are neither used nor cross-checked."""
    return values.get("engine") != "patroni"


def _ignored_warnings(values: Mapping[str, Any]) -> tuple[str, ...]:
    """Warnings naming keys that are set but that nothing reads with this config, so a setting never
    silently does nothing: the RDS-only keys with engine patroni, ``patroni`` with engine rds, and
    ``drVpcCidr`` without a ``drRegion`` (there is no DR replica whose VPC it would be)."""
    if _reads_rds_keys(values):
        warnings = []
        if "patroni" in values:
            warnings.append(f"engine rds ignores {NAMESPACE}:patroni (the Patroni engine's settings); "
                            f"set {NAMESPACE}:engine to patroni to use them, or remove the key")
        if "dr_vpc_cidr" in values and not values.get("dr_region"):
            warnings.append(f"{NAMESPACE}:drVpcCidr = {values['dr_vpc_cidr']!r} is ignored: it is the VPC of the DR "
                            f"replica, and without {NAMESPACE}:drRegion there is none")
        return tuple(warnings)
    ignored = [key for key in RDS_ONLY if KEYS[key][0] in values]
    if not ignored:
        return ()
    dr_note = ("; with patroni there is no DR replica instance: drRegion replicates the backup bucket only"
               if set(ignored) & set(DR_REPLICA_ONLY) else "")
    return (f"engine patroni ignores the RDS-only {', '.join(f'{NAMESPACE}:{k}' for k in ignored)}{dr_note}",)


def _cross_checks(values: dict[str, Any], region: str | None) -> list[str]:
    """Rules that involve more than one key; those about RDS-only keys only for an engine that reads them."""
    rds = _rds_cross_checks(values) if _reads_rds_keys(values) else []
    return rds + _shared_cross_checks(values, region)


def min_autoscaling_ceiling(allocated_storage: int) -> int:
    """The smallest ``maxAllocatedStorage`` RDS accepts for this ``allocatedStorage``: 10% more, rounded up.

    RDS storage autoscaling refuses a maximum storage threshold less than 10% above the allocated
    storage ("Invalid max storage size"; RDS User Guide, USER_PIOPS.Autoscaling: 1000 GiB needs at
    least 1100). Integer arithmetic, so 20 GiB needs exactly 22.
    """
    return -(-allocated_storage * 11 // 10)


def _rds_cross_checks(values: dict[str, Any]) -> list[str]:
    """Rules about RDS-only keys: storage autoscaling, the promoted DR replica, backup vs maintenance window."""
    problems = []
    defaults = StackConfig(project="", stack="", region="")
    get = lambda attr: values.get(attr, getattr(defaults, attr))

    max_storage, storage = get("max_allocated_storage"), get("allocated_storage")
    if max_storage and max_storage < min_autoscaling_ceiling(storage):
        problems.append(
            f"{NAMESPACE}:maxAllocatedStorage = {max_storage}: must be 0 (autoscaling off) or at least "
            f"{min_autoscaling_ceiling(storage)} GiB, 10% above allocatedStorage ({storage}): RDS refuses a "
            "smaller ceiling (Invalid max storage size)"
        )
    if values.get("dr_promoted") and not values.get("dr_region"):
        problems.append(f"{NAMESPACE}:drPromoted = true: needs {NAMESPACE}:drRegion (the region of the promoted "
                        "DR replica); without a DR region there is nothing to promote")
    if windows_overlap(parse_backup_window(get("backup_window")), parse_maintenance_window(get("maintenance_window"))):
        problems.append(
            f"{NAMESPACE}:maintenanceWindow = {get('maintenance_window')!r}: overlaps the daily "
            f"backupWindow {get('backup_window')!r}; move one of them"
        )
    return problems


def _shared_cross_checks(values: dict[str, Any], region: str | None) -> list[str]:
    """Rules about keys both engines read: the DR region and the network."""
    problems = []
    if values.get("dr_region") and values["dr_region"] == region:
        problems.append(f"{NAMESPACE}:drRegion = {region!r}: must differ from aws:region")
    has_vpc, has_subnets = "vpc_id" in values, "subnet_ids" in values
    if has_vpc != has_subnets:
        problems.append(f"{NAMESPACE}:vpcId and {NAMESPACE}:subnetIds go together: set both to bring your own VPC")
    if has_subnets and len(values["subnet_ids"]) < 2:
        problems.append(f"{NAMESPACE}:subnetIds: give at least 2 subnets in at least 2 availability zones")
    if has_vpc and "vpc_cidr" in values:
        problems.append(f"{NAMESPACE}:vpcCidr and {NAMESPACE}:vpcId exclude each other: create a VPC or bring one")
    return problems


def load_config() -> StackConfig:
    """Read and validate this stack's ``pgha:*`` and ``aws:region`` config from Pulumi."""
    import pulumi

    conf = pulumi.Config(NAMESPACE)
    raw = {key: conf.get(key) for key in KEYS if conf.get(key) is not None}
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
