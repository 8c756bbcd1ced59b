"""Drills on a deployed RDS stack with boto3: Multi-AZ failover, replica and DR promotion, PITR restore.

Instances are found by the identifiers the program gives them (``<project>-<stack>-primary``,
``-replica-N``, ``-dr-replica``), read from the stack's config through the same loader the
program uses. Works against any endpoint boto3 is pointed at (``AWS_ENDPOINT_URL``).

RTO: from the API call until the endpoint accepts writes when the database is reachable (a
heartbeat written through ``--dsn`` every second); otherwise from the instance status and RDS
events, and the report says which. RPO: the newest heartbeat on the promoted instance vs the
newest acknowledged one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.names import dr_name, dr_replica_identifier, primary_identifier, replica_identifier
from pgha.connect import ConnectionSettings, connect
from pgha.drill.engine import DrillRefused, DrillResult, Round
from pgha.drill.probe import ProbeReport, WriteProbe, missing_acknowledged, present_ids
from pgha.drill.scenarios import RDS_ROUNDS
from pgha.drill.stack_config import ConfigChange, announce_change
from pgha.wait import WaitTimeout, holds_within, wait_until

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from components.config import StackConfig
    from pgha.ci.harness import Plan

SCENARIOS = tuple(RDS_ROUNDS)
HEARTBEAT_TABLE = "pgha_drill_heartbeat"
WAIT_TIMEOUT_S = 3600.0
#: How long to try the promoted endpoint once RDS says it is available (then RTO falls back to the status).
PROMOTED_CONNECT_S = 60.0
NO_DSN = "the database was not reachable from here (no --dsn)"
NO_DSN_RPO = "not measured: no --dsn to write the heartbeat through"
#: DescribeDBInstances statuses an instance does not leave by itself for "available": waiting on is pointless.
TERMINAL_STATUSES = frozenset(
    {
        "failed",
        "incompatible-restore",
        "incompatible-network",
        "incompatible-parameters",
        "incompatible-option-group",
        "incompatible-credentials",
        "storage-full",
        "inaccessible-encryption-credentials",
    }
)
#: restore-pitr's default RTO target: the whole restore (RDS restores take 10-30 min, more for big databases),
#: not the failover KPI of 300 s, which every real restore would fail.
RESTORE_PITR_MAX_RTO_S = 3600.0


class DryRun(Exception):
    """Deletion protection without --yes: ``lines`` say what the drill would do."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("\n".join(lines))


def load_stack(stack: str, project_dir: Path) -> StackConfig:
    """The stack's validated StackConfig, read like the program reads it (harness conversion + config loader)."""
    from components.config import ConfigError, parse_config
    from pgha.ci.harness import project_name, stack_config

    try:
        config, _secret_keys = stack_config(stack, project_dir=project_dir)
        project = project_name(project_dir)
    except (FileNotFoundError, KeyError, OSError) as err:
        raise DrillRefused(str(err).strip("'\"")) from None
    raw = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith("pgha:")}
    try:
        cfg = parse_config(raw, project=project, stack=stack, region=config.get("aws:region"))
    except ConfigError as err:
        raise DrillRefused(f"stack {stack}: " + "; ".join(err.problems)) from None
    if cfg.engine != "rds":
        raise DrillRefused(
            f"stack {stack} uses pgha:engine {cfg.engine}: RDS drills need engine rds "
            "(drill Patroni with `pgha drill lab`)"
        )
    return cfg


@dataclass(frozen=True)
class RdsOptions:
    """What the user asked for."""

    yes: bool = False
    replica: str | None = None
    to: str | None = None
    keep: bool = False
    max_lag_s: float = 1.0
    allow_missing_lag: bool = False
    #: Where to reach the database (the writer); None = measure from status and events only.
    settings: ConnectionSettings | None = None
    poll_s: float = 5.0
    #: failover: reboot even when parameter changes wait for a reboot (the failover applies them too).
    allow_pending_reboot: bool = False
    #: The directory of Pulumi.yaml: the promote-replica advice names URNs from this program's plan.
    project_dir: Path | None = None

    @property
    def grace_s(self) -> float:
        """How long an instance may look unchanged after an API call before its status is believed."""
        return max(3 * self.poll_s, 1.0)


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def _aws_message(err: Exception) -> str:
    response = getattr(err, "response", None)
    if response and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return str(err)


class RdsDrill:
    """One RDS scenario on one stack, run by :func:`pgha.drill.engine.run_drill`."""

    def __init__(self, cfg: Any, name: str, options: RdsOptions, say: Callable[[str], None] = print):
        if name not in SCENARIOS:
            raise DrillRefused(f"unknown RDS scenario {name!r}: choose one of {', '.join(SCENARIOS)}")
        self.cfg, self.name, self.options, self.say = cfg, name, options, say
        self.target = f"rds-{cfg.stack}"
        self.primary_id = primary_identifier(cfg.name_prefix)
        self.subject_id, self.subject_region = self.primary_id, cfg.region
        self.scratch_id = ""  # restore-pitr: the scratch instance, named by the pre-checks
        self.restore_time: datetime | None = None
        self.config_change: ConfigChange | None = None
        self.advice: list[str] = []
        self.notes: list[str] = []
        self.replica_lag_s: float | None = None
        self._events: list[dict[str, Any]] = []
        #: PromoteReadReplica returned: the replica is (becoming) a standalone primary, for good.
        self.promoted = False
        #: restore-pitr's round got as far as its checks (an abort before leaves the scratch instance unchecked).
        self.restore_checked = False
        #: RestoreDBInstanceToPointInTime returned: the scratch instance is this run's (restore() touches no other).
        self.scratch_created = False

    # --- AWS -------------------------------------------------------------------------------

    def client(self, service: str, region: str | None = None) -> BaseClient:
        """A boto3 client for the stack's region (or ``region``); honours AWS_ENDPOINT_URL."""
        import boto3

        return boto3.client(service, region_name=region or self.cfg.region)

    def describe(self, identifier: str, region: str | None = None) -> dict[str, Any]:
        """The instance as DescribeDBInstances returns it; DrillRefused naming it when it does not exist."""
        rds = self.client("rds", region)
        try:
            return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        except rds.exceptions.DBInstanceNotFoundFault:
            raise DrillRefused(
                f"no RDS instance {identifier} in {region or self.cfg.region}: is stack "
                f"{self.cfg.stack} deployed there (check the account, region and endpoint)?"
            ) from None

    def _check_stack(self, instance: dict[str, Any]) -> None:
        tags = {t["Key"]: t["Value"] for t in instance.get("TagList") or []}
        for key, want in (("pgha:stack", self.cfg.stack), ("pgha:project", self.cfg.project)):
            if key in tags and tags[key] != want:
                raise DrillRefused(
                    f"{instance['DBInstanceIdentifier']} is tagged {key}={tags[key]}, not {want}: wrong stack"
                )

    def _metric_points(
        self, identifier: str, region: str, metric: str, start: datetime, end: datetime, statistic: str
    ) -> list[dict[str, Any]]:
        """CloudWatch datapoints (one a minute) of one AWS/RDS metric of one instance between start and end."""
        return self.client("cloudwatch", region).get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName=metric,
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
            StartTime=start,
            EndTime=end,
            Period=60,
            Statistics=[statistic],
        )["Datapoints"]

    def replica_lag(self, identifier: str, region: str) -> tuple[float, datetime] | None:
        """The newest ``ReplicaLag`` (CloudWatch, maximum over a minute, last 10 minutes) and the minute it is of;
        None when missing."""
        now = datetime.now(UTC)
        points = self._metric_points(
            identifier, region, "ReplicaLag", now - timedelta(minutes=10), now + timedelta(minutes=1), "Maximum"
        )
        if not points:
            return None
        newest = max(points, key=lambda p: p["Timestamp"])
        return float(newest["Maximum"]), newest["Timestamp"].replace(second=0, microsecond=0)

    def primary_wal_rate(self, minute: datetime) -> float | None:
        """Bytes/s of WAL the primary generated in the minute starting at ``minute`` (``TransactionLogsGeneration``,
        average, as components/alarms.py reads it); None when missing."""
        points = self._metric_points(
            self.primary_id,
            self.cfg.region,
            "TransactionLogsGeneration",
            minute,
            minute + timedelta(minutes=1),
            "Average",
        )
        return max((float(p["Average"]) for p in points), default=None)

    # --- guards ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Every guard, before anything changes: DrillRefused (exit 2) or DryRun (print the plan only)."""
        try:
            self._prepare()
        except _aws_errors() as err:
            raise DrillRefused(f"AWS error: {_aws_message(err)}") from None

    def _prepare(self) -> None:
        if self.name in ("promote-replica", "promote-dr"):
            self._resolve_replica()  # what the stack's config says first: no AWS call for a wrong --replica
        primary = self.describe(self.primary_id)
        self._check_stack(primary)
        if self.name == "failover":
            if not primary.get("MultiAZ"):
                raise DrillRefused(
                    f"{self.primary_id} is not Multi-AZ: a reboot with failover needs a standby (pgha:multiAz true)"
                )
            self._require_available(primary)
            self._pending_reboot_guard(primary)
        elif self.name in ("promote-replica", "promote-dr"):
            replica = self.describe(self.subject_id, self.subject_region)
            self._check_stack(replica)
            source = replica.get("ReadReplicaSourceDBInstanceIdentifier") or ""
            if not source.split(":")[-1] == self.primary_id:
                raise DrillRefused(
                    f"{self.subject_id} is not a read replica of {self.primary_id} "
                    f"(source: {source or 'none'}): nothing to promote"
                )
            self._require_available(replica)
            self._require_replicating(replica)
            self._lag_guard()
        else:
            self._restore_guard(primary)
        protected = bool(primary.get("DeletionProtection")) or self.cfg.deletion_protection
        if protected and not self.options.yes:
            raise DryRun(
                [f"stack {self.cfg.stack} has deletion protection: not running without --yes. The drill would:"]
                + [f"  - {line}" for line in self.plan()]
            )
        self._heartbeat_guard()

    def _heartbeat_guard(self) -> None:
        """With --dsn (failover, promotions): create the heartbeat table now, as the round would, so a wrong
        password, an unreachable writer or a missing CREATE privilege is refused (exit 2, nothing changed on
        AWS) instead of aborting the round after the drill started (exit 1, a failed report)."""
        if self.options.settings is None or self.name == "restore-pitr":
            return
        try:
            WriteProbe(self.options.settings, interval=1.0, table=HEARTBEAT_TABLE, timeout=5).prepare()
        except Exception as err:  # connection refused, authentication, permission denied, ...
            raise DrillRefused(
                f"--dsn {self.options.settings.display()}: the heartbeat table {HEARTBEAT_TABLE} "
                f"could not be prepared ({type(err).__name__}: {str(err).strip()[:300]}); "
                "nothing was changed"
            ) from None

    def _pending_reboot_guard(self, primary: dict[str, Any]) -> None:
        """Refuse a failover while changes wait for a reboot (parameter group ``pending-reboot``, or
        ``PendingModifiedValues``): the reboot would apply them, so the drill would change more than it
        tests. ``--allow-pending-reboot`` reboots anyway."""
        pending = [
            f"parameter group {g.get('DBParameterGroupName')} is pending-reboot"
            for g in primary.get("DBParameterGroups") or []
            if g.get("ParameterApplyStatus") == "pending-reboot"
        ]
        modified = primary.get("PendingModifiedValues") or {}
        if modified:
            pending.append("pending modifications " + ", ".join(sorted(modified)))
        if pending and not self.options.allow_pending_reboot:
            raise DrillRefused(
                f"{self.primary_id}: {'; '.join(pending)}: the failover's reboot would apply them; "
                "refusing (apply them first, or --allow-pending-reboot to reboot anyway)"
            )

    def _resolve_replica(self) -> None:
        if self.name == "promote-dr":
            if not self.cfg.dr_region:
                raise DrillRefused(f"stack {self.cfg.stack} has no DR replica (pgha:drRegion is not set)")
            self.subject_id = dr_replica_identifier(dr_name(self.cfg.name_prefix))
            self.subject_region = self.cfg.dr_region
            return
        wanted = self.options.replica
        if not wanted:
            raise DrillRefused("promote-replica needs --replica N (or the replica's identifier)")
        # ASCII digits only: str.isdigit() is also true of Arabic-Indic, full-width and superscript digits
        number = lambda text: text.isascii() and text.isdigit()
        identifier = replica_identifier(self.cfg.name_prefix, wanted) if number(wanted) else wanted
        prefix = replica_identifier(self.cfg.name_prefix, "")
        if not identifier.startswith(prefix) or not number(identifier[len(prefix) :]):
            raise DrillRefused(f"--replica {wanted}: not one of this stack's replicas ({prefix}N)")
        if int(identifier[len(prefix) :]) > self.cfg.replicas:
            raise DrillRefused(f"--replica {wanted}: stack {self.cfg.stack} declares {self.cfg.replicas} replica(s)")
        self.subject_id = identifier

    def _require_available(self, instance: dict[str, Any]) -> None:
        status = instance.get("DBInstanceStatus")
        if status != "available":
            raise DrillRefused(f"{instance['DBInstanceIdentifier']} is {status!r}, not available: refusing")

    def _require_replicating(self, replica: dict[str, Any]) -> None:
        """Refuse a replica whose replication RDS reports broken (its "read replication" status): it has not
        received what the primary wrote since, and on an idle primary its lag would not show it."""
        for info in replica.get("StatusInfos") or []:
            if info.get("StatusType") == "read replication" and (
                not info.get("Normal", True) or info.get("Status") != "replicating"
            ):
                raise DrillRefused(
                    f"{self.subject_id} read replication is {info.get('Status')} "
                    f"({info.get('Message') or 'no message'}): promotion would lose what it has not "
                    "received; refusing"
                )

    def _lag_guard(self) -> None:
        newest = self.replica_lag(self.subject_id, self.subject_region)
        if newest is None:
            if not self.options.allow_missing_lag:
                raise DrillRefused(
                    f"no ReplicaLag metric for {self.subject_id} in the last 10 minutes: cannot tell "
                    "what promotion would lose; refusing (--allow-missing-lag to promote anyway)"
                )
            self.notes.append(f"ReplicaLag of {self.subject_id} was missing; promoted with --allow-missing-lag")
            self.replica_lag_s = None
            return
        lag, minute = newest
        if lag > self.options.max_lag_s:
            self._idle_primary_or_refuse(lag, minute)
        self.replica_lag_s = lag

    def _idle_primary_or_refuse(self, lag: float, minute: datetime) -> None:
        """A ReplicaLag above --max-lag counts only while the primary writes, as in components/alarms.py: RDS
        computes it as the time since the last commit the replica replayed, which grows on a caught-up replica
        of an idle primary. Refuse unless the primary's WAL rate in that minute shows it idle."""
        from components.alarms import WAL_FLOOR

        over = f"{self.subject_id} ReplicaLag is {lag:g} s > --max-lag {self.options.max_lag_s:g} s"
        wal = self.primary_wal_rate(minute)
        if wal is None:
            raise DrillRefused(
                f"{over} and {self.primary_id} has no TransactionLogsGeneration for {minute:%H:%M} UTC: "
                "cannot tell an idle primary from a lagging replica; refusing"
            )
        if wal >= WAL_FLOOR:
            raise DrillRefused(
                f"{over} while {self.primary_id} wrote {wal:.0f} B/s of WAL: refusing to promote a lagging replica"
            )
        self.notes.append(
            f"{over}, but {self.primary_id} was idle that minute ({wal:.0f} B/s of WAL < {WAL_FLOOR}): "
            "RDS's ReplicaLag is the time since the last replayed commit, which grows while the primary "
            "commits nothing (components/alarms.py); not counted as lag"
        )

    def _restore_guard(self, primary: dict[str, Any]) -> None:
        latest = primary.get("LatestRestorableTime")
        if not self.options.to:
            raise DrillRefused(
                "restore-pitr needs --to TIME (ISO 8601 with a time zone, e.g. 2026-01-31T12:00:00Z, or 'latest')"
            )
        if self.options.to == "latest":
            self.restore_time = None
        else:
            try:
                when = datetime.fromisoformat(self.options.to.replace("Z", "+00:00"))
            except ValueError:
                raise DrillRefused(
                    f"--to {self.options.to!r}: not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)"
                ) from None
            if when.tzinfo is None:
                raise DrillRefused(f"--to {self.options.to!r}: give a time zone (e.g. Z for UTC)")
            earliest = datetime.now(UTC) - timedelta(days=int(primary.get("BackupRetentionPeriod") or 0))
            if latest and when > latest:
                raise DrillRefused(f"--to {when.isoformat()} is after the latest restorable time {latest.isoformat()}")
            if when < earliest:
                raise DrillRefused(
                    f"--to {when.isoformat()} is before the backup retention window "
                    f"(earliest {earliest.isoformat(timespec='seconds')})"
                )
            self.restore_time = when
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.scratch_id = f"{self.cfg.name_prefix}-pitr-{stamp}"[:63]
        self.primary = primary

    def plan(self) -> list[str]:
        """What the drill does, in plain words (shown instead of running when it needs --yes)."""
        if self.name == "failover":
            return [
                f"reboot {self.primary_id} ({self.cfg.region}) with ForceFailover: the Multi-AZ standby takes "
                "over; writes stop for the failover (typically 60-120 s)"
            ]
        if self.name in ("promote-replica", "promote-dr"):
            return [
                f"promote {self.subject_id} ({self.subject_region}) to a standalone primary - one-way: it "
                f"stops replicating from {self.primary_id} for good",
                "then print the stack config change that makes the program declare it",
            ]
        when = self.restore_time.isoformat() if self.restore_time else "the latest restorable time"
        return [
            f"restore {self.primary_id} as of {when} into a new instance {self.scratch_id} in the primary's "
            "subnet group and security groups, wait until it is available",
            "keep it (--keep)" if self.options.keep else "then delete it (no final snapshot)",
        ]

    # --- rounds -----------------------------------------------------------------------------

    def run_round(self, rnd: Round) -> None:
        """Dispatch to the scenario (:data:`pgha.drill.scenarios.RDS_ROUNDS`)."""
        getattr(self, RDS_ROUNDS[self.name])(rnd)

    def restore(self) -> list[str]:
        """Delete a scratch instance a failed restore round left behind (a promotion cannot be undone: see
        :meth:`left_changed`). A scratch instance that still exists afterwards is listed with the command that
        deletes it: one a round aborted with --keep (left unchecked), or one whose deletion failed."""
        if self.name != "restore-pitr" or not self.scratch_created or not self._exists(self.scratch_id):
            return []
        if self.options.keep and self.restore_checked:
            return []  # kept on purpose after its checks: left_changed names it
        why = "the round aborted; kept by --keep" if self.options.keep else "left behind"
        if not self.options.keep:
            try:
                self._delete_scratch()
            except _aws_errors() as err:
                why = f"could not be deleted: {_aws_message(err)}"
            if not self._exists(self.scratch_id):
                return []
        return [f"scratch instance {self.scratch_id} {why}: delete it with {self._delete_command()}"]

    def left_changed(self) -> list[str]:
        """What the drill leaves changed on purpose, with what to run: a promotion (one-way: from the moment
        PromoteReadReplica returned, even when the round aborted after it), a scratch instance kept by --keep."""
        stack = self.cfg.stack
        if self.promoted and self.name == "promote-dr":
            return [
                f"{self.subject_id} ({self.subject_region}) was promoted to a standalone primary - one-way, not "
                f"undone: declare it with pulumi config set --stack {stack} pgha:drPromoted true (or "
                f"--update-config), then pulumi up --refresh --stack {stack}"
            ]
        if self.promoted:
            return [
                f"{self.subject_id} ({self.subject_region}) was promoted to a standalone primary - one-way, not "
                "undone: recreate the replica with the steps in the notes (rename or delete it, pulumi refresh, "
                "pulumi up)"
            ]
        if (
            self.name == "restore-pitr"
            and self.options.keep
            and self.restore_checked
            and self.scratch_id
            and self._exists(self.scratch_id)
        ):
            return [f"scratch instance {self.scratch_id} kept (--keep): delete it with {self._delete_command()}"]
        return []

    def conclude(
        self, result: DrillResult, stack_file: Path, *, update_config: bool, say: Callable[[str], None]
    ) -> None:
        """After the run: the drill's notes into ``result``, then what the operator does next, said and recorded
        in the report: the stack config change a promote-dr calls for (written into ``stack_file`` with
        ``update_config``), or how to recreate a promoted replica."""
        result.notes += self.notes
        if self.config_change is not None:
            result.settings["stack_config_change"] = announce_change(
                self.config_change, self.cfg.stack, stack_file, update=update_config, say=say
            )
        if self.advice:
            result.notes.append("\n".join(self.advice))
            for line in self.advice:
                say(line)
            if update_config:
                say("--update-config: no stack config change for promote-replica (see above)")

    def _delete_command(self) -> str:
        return (
            f"aws rds delete-db-instance --region {self.cfg.region} --db-instance-identifier {self.scratch_id} "
            "--skip-final-snapshot"
        )

    def _heartbeat(self, rnd: Round) -> WriteProbe | None:
        if self.options.settings is None:
            rnd.event("heartbeat not written", "no --dsn: RTO from instance status and RDS events, RPO not measured")
            return None
        probe = WriteProbe(self.options.settings, interval=1.0, table=HEARTBEAT_TABLE, timeout=5)
        probe.prepare()
        probe.start()
        rnd.event("heartbeat started", f"every second through {self.options.settings.display()}")
        time.sleep(3)
        return probe

    def _wait_status(
        self, identifier: str, region: str, done: Callable[[dict[str, Any]], bool], timeout: float = WAIT_TIMEOUT_S
    ) -> tuple[dict[str, Any], float]:
        """Poll DescribeDBInstances until ``done``; returns the instance and when it was seen done."""
        seen: dict[str, Any] = {}

        def settled() -> dict[str, Any] | None:
            instance = self.describe(identifier, region)
            if instance.get("DBInstanceStatus") != seen.get("DBInstanceStatus"):
                self.say(f"{identifier}: {instance.get('DBInstanceStatus')}")
            seen.clear()
            seen.update(instance)
            return instance if done(instance) else None

        def not_stuck() -> None:
            if seen.get("DBInstanceStatus") in TERMINAL_STATUSES:
                raise RuntimeError(
                    f"{identifier} is {seen['DBInstanceStatus']!r}: RDS does not make it available "
                    "from that state by itself; stopped waiting"
                )

        try:
            instance = wait_until(f"{identifier} to settle", settled, timeout, self.options.poll_s, check=not_stuck)
        except WaitTimeout:
            not_stuck()
            raise TimeoutError(f"{identifier} still {seen.get('DBInstanceStatus')} after {timeout:.0f} s") from None
        return instance, time.time()

    def _failover(self, rnd: Round) -> None:
        probe = self._heartbeat(rnd)
        rds = self.client("rds")
        before = self.describe(self.primary_id)
        rnd.facts["availability_zone_before"] = before.get("AvailabilityZone")
        called = time.time()
        try:
            rds.reboot_db_instance(DBInstanceIdentifier=self.primary_id, ForceFailover=True)
            rnd.event("fault injected", f"RebootDBInstance {self.primary_id} ForceFailover=true", at=called)
            after, available_at = self._wait_status(self.primary_id, self.cfg.region, self._settled(called))
            rnd.event("instance available", f"{self.primary_id} in {after.get('AvailabilityZone')}", at=available_at)
            rnd.facts["availability_zone_after"] = after.get("AvailabilityZone")
            self._rds_events(rnd, self.primary_id, self.cfg.region, called)
            if probe is not None:
                acked = len(probe.report.commits)
                holds_within("three more heartbeats", lambda: len(probe.report.commits) >= acked + 3, 300, 1)
        finally:
            report = probe.stop() if probe is not None else None
        if report is not None and probe is not None and self.options.settings is not None:  # one implies the others
            rnd.measure_probe(
                report,
                missing_acknowledged(self.options.settings, report.acknowledged, HEARTBEAT_TABLE),
                source="heartbeat through --dsn",
                noise_s=2 * probe.interval,
            )
            self._rto_from_call(rnd, report, called)
            rnd.check("writes acknowledged again after the failover", any(c.at > available_at for c in report.commits))
            rnd.check("no acknowledged heartbeat lost", not rnd.lost, f"{len(rnd.lost)} lost")
        else:
            self._status_rto(rnd, called, available_at, NO_DSN, NO_DSN_RPO)
        rnd.check(f"{self.primary_id} available after the failover", after.get("DBInstanceStatus") == "available")

    def _rto_from_call(self, rnd: Round, report: ProbeReport, called: float) -> None:
        """RTO from the API call until a heartbeat was acknowledged again (the end of the longest gap, if it came
        after the call, else the first heartbeat after it). None when no heartbeat was acknowledged after the call,
        or the heartbeat's writes had not come back when it stopped: the writes were not back."""
        if rnd.not_recovered_s is not None:  # measure_probe saw the heartbeat's last write fail
            return
        back_at = (
            rnd.rto_window[1]
            if rnd.rto_window and rnd.rto_window[1] >= called
            else next((c.at for c in report.commits if c.at >= called), None)
        )
        if back_at is None:
            last = report.commits[-1].at if report.commits else called
            rnd.writes_not_back(
                last, report.stopped if report.stopped is not None else time.time(), "heartbeat through --dsn"
            )
            return
        rnd.rto_window, rnd.rto_s = (called, back_at), round(back_at - called, 3)
        rnd.rto_source = "heartbeat through --dsn: from the API call until a write was acknowledged again"

    def _settled(self, called: float) -> Callable[[dict[str, Any]], bool]:
        """True once the instance is available again after an API call. A failover: after it was seen busy, or
        still looks unchanged after the grace time (the call was a no-op). A promotion: once it no longer lists
        a replication source (RDS clears it when the promotion completes), or still lists one after the grace
        time, which the "standalone primary" check then fails."""
        seen = {"busy": False}

        def done(instance: dict[str, Any]) -> bool:
            status = instance.get("DBInstanceStatus")
            seen["busy"] |= status != "available"
            late = time.time() - called > self.options.grace_s
            if self.name.startswith("promote"):
                return status == "available" and (not instance.get("ReadReplicaSourceDBInstanceIdentifier") or late)
            return status == "available" and (seen["busy"] or late)

        return done

    def _rds_events(self, rnd: Round, identifier: str, region: str, since: float) -> list[dict[str, Any]]:
        events = self.client("rds", region).describe_events(
            SourceIdentifier=identifier,
            SourceType="db-instance",
            StartTime=datetime.fromtimestamp(since - 1, UTC),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
        )["Events"]
        events = [e for e in events if e["Date"].timestamp() >= since - 1]  # some endpoints ignore StartTime
        for event in events:
            rnd.event("RDS event", event.get("Message", ""), at=event["Date"].timestamp())
        self._events = events
        return events

    def _status_rto(self, rnd: Round, called: float, available_at: float, why: str, rpo_source: str) -> None:
        """RTO from the RDS events or the instance status, when it could not be measured by writing (``why``)."""
        done = [
            e
            for e in self._events
            if "complete" in e.get("Message", "").lower()
            and ("failover" in e.get("Message", "").lower() or "promot" in e.get("Message", "").lower())
        ]
        if done:
            end, source = done[-1]["Date"].timestamp(), f"RDS event {done[-1]['Message']!r}"
        else:
            end, source = available_at, f"instance status (DescribeDBInstances polled every {self.options.poll_s:g} s)"
        end = max(end, called)
        rnd.rto_window, rnd.rto_s = (called, end), round(end - called, 3)
        rnd.rto_source = f"{source}: {why}"
        rnd.rpo_source = rpo_source

    def _promote(self, rnd: Round) -> None:
        probe = self._heartbeat(rnd)
        rnd.facts["replica_lag_s_before"] = getattr(self, "replica_lag_s", None)
        retention, window = self.cfg.backup_retention_days, self.cfg.backup_window
        called = time.time()
        report = probe.stop() if probe is not None else None  # the primary counts as lost from here
        # backups from the promotion on, in the stack's window: what the program declares for the promoted
        # instance, so the `pulumi up --refresh` that follows finds them already set
        self.client("rds", self.subject_region).promote_read_replica(
            DBInstanceIdentifier=self.subject_id, BackupRetentionPeriod=retention, PreferredBackupWindow=window
        )
        # One-way from here: whatever aborts the round later (a throttled describe, a timeout), the config
        # change and the advice are already set, so they are printed (and --update-config writes them).
        self.promoted = True
        rnd.event(
            "fault injected", f"PromoteReadReplica {self.subject_id} (backups {retention} days, {window})", at=called
        )
        rnd.facts.update(promoted=self.subject_id, region=self.subject_region)
        self._config_advice(rnd)
        after, available_at = self._wait_status(self.subject_id, self.subject_region, self._settled(called))
        rnd.event("promoted instance available", self.subject_id, at=available_at)
        source = after.get("ReadReplicaSourceDBInstanceIdentifier")
        rnd.facts.update(endpoint=(after.get("Endpoint") or {}).get("Address"), still_lists_source=source)
        self._rds_events(rnd, self.subject_id, self.subject_region, called)
        self._measure_promoted(rnd, after, called, available_at, report)
        status = after.get("DBInstanceStatus")
        rnd.check(
            f"{self.subject_id} available as a standalone primary",
            status == "available" and not source,
            f"still lists {source} as its replication source"
            if source
            else ("" if status == "available" else f"status {status}"),
        )

    def _measure_promoted(
        self, rnd: Round, instance: dict[str, Any], called: float, available_at: float, report: ProbeReport | None
    ) -> None:
        """RTO and RPO of a promotion: by writing to the promoted endpoint with the --dsn credentials (a check),
        else from the RDS events or the instance status, saying why; the heartbeats acknowledged before are kept."""
        rnd.commits = list(report.commits) if report is not None else []
        if report is None:
            self._status_rto(rnd, called, available_at, NO_DSN, NO_DSN_RPO)
            return
        endpoint = (instance.get("Endpoint") or {}).get("Address") or "(none given by RDS)"
        reached = self._promoted_accepts_writes(rnd, instance, called, report)
        rnd.check("the promoted endpoint accepted a write through --dsn", reached, endpoint)
        if not reached:
            self._status_rto(
                rnd,
                called,
                available_at,
                f"--dsn was given, but the promoted endpoint {endpoint} did "
                f"not accept a write from here within {PROMOTED_CONNECT_S:g} s",
                self._rpo_unread(rnd, report),
            )

    def _promoted_accepts_writes(
        self, rnd: Round, instance: dict[str, Any], called: float, report: ProbeReport
    ) -> bool:
        """With --dsn: write to the promoted endpoint (RTO) and compare its newest heartbeat (RPO); False when
        it did not accept a write from here."""
        endpoint = instance.get("Endpoint") or {}
        if self.options.settings is None or not endpoint.get("Address"):
            rnd.event("promoted endpoint unknown", "RDS gave no endpoint address")
            return False
        settings = replace(
            self.options.settings, hosts=((endpoint["Address"], int(endpoint.get("Port") or 5432)),), connect_timeout=5
        )
        last = [""]

        def accepts_a_write() -> bool:
            try:
                connect(settings, writable=True).close()  # a server out of recovery accepts writes
            except Exception as err:  # not reachable, or still read-only
                last[0] = str(err)
                return False
            return True

        if not holds_within("the promoted endpoint to accept a write", accepts_a_write, PROMOTED_CONNECT_S, 2):
            rnd.event("promoted endpoint not reachable", last[0][:200])
            return False
        writable_at = time.time()
        rnd.event("writes accepted by the promoted instance", endpoint["Address"], at=writable_at)
        rnd.rto_window, rnd.rto_s = (called, writable_at), round(writable_at - called, 3)
        rnd.rto_source = "from the API call until the promoted endpoint accepted a write (--dsn credentials)"
        present = present_ids(settings, HEARTBEAT_TABLE)
        commits = report.commits
        rnd.lost = sorted({c.id for c in commits} - present)
        newest_acked = max((c.at for c in commits), default=None)
        newest_there = max((c.at for c in commits if c.id in present), default=None)
        rnd.rpo_s = (
            round(newest_acked - newest_there, 3) if newest_acked and newest_there else (0.0 if not commits else None)
        )
        rnd.rpo_source = "newest heartbeat on the promoted instance vs the newest acknowledged one"
        return True

    def _rpo_unread(self, rnd: Round, report: ProbeReport) -> str:
        """The RPO source when the promoted instance could not be read from here: no RPO, but the newest heartbeat
        the primary acknowledged before the promotion (a fact), which is what the promoted instance should hold."""
        if not report.commits:
            return "not measured: the promoted endpoint did not answer from here, and no heartbeat was acknowledged"
        newest = report.commits[-1]
        at = datetime.fromtimestamp(newest.at, UTC).isoformat(timespec="milliseconds")
        rnd.facts["newest_acknowledged_heartbeat"] = {"id": newest.id, "at": at}
        return (
            f"not measured: the promoted endpoint did not answer from here; {len(report.commits)} heartbeats were "
            f"acknowledged before the promotion, the newest (id {newest.id}) at {at}; the newest id in "
            f"{HEARTBEAT_TABLE} on the promoted instance, read later, gives the RPO"
        )

    def _config_advice(self, rnd: Round) -> None:
        if self.name == "promote-dr":
            self.config_change = ConfigChange(
                "pgha:drPromoted",
                "true",
                f"{self.subject_id} is now a standalone primary with its own backups: the program declares it "
                "without replicateSourceDb and gives it a master secret in its own region (pulumi up --refresh)",
            )
            rnd.event("stack config change", f"{self.config_change.key}: {self.config_change.value}")
            return
        self.advice = replica_rollback_advice(
            self._plan(), self.cfg.stack, self.subject_id, self.primary_id, self.cfg.replicas, self.subject_region
        )
        rnd.event("stack config unchanged", "the program recreates the replica; see the report's advice")

    def _plan(self) -> Plan | None:
        """The stack's plan (the program under mocks, as ``pgha plan``): the URNs and dependents the
        promote-replica advice names; None when the program cannot run here (the advice then says where to look)."""
        from pgha.ci.harness import PROJECT_DIR, run_program

        try:
            return run_program(self.cfg.stack, project_dir=self.options.project_dir or PROJECT_DIR)
        except Exception as err:  # the advice must still be given: the promotion already happened
            self.notes.append(f"the stack's plan could not be computed for the advice: {type(err).__name__}: {err}")
            return None

    def _restore_pitr(self, rnd: Round) -> None:
        primary = self.primary
        rds = self.client("rds")
        args: dict[str, Any] = {
            "SourceDBInstanceIdentifier": self.primary_id,
            "TargetDBInstanceIdentifier": self.scratch_id,
            "DBInstanceClass": primary.get("DBInstanceClass"),
            "DBSubnetGroupName": (primary.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
            "VpcSecurityGroupIds": [g["VpcSecurityGroupId"] for g in primary.get("VpcSecurityGroups") or []],
            "MultiAZ": False,
            "PubliclyAccessible": False,
            "DeletionProtection": False,
            "CopyTagsToSnapshot": True,
            "Tags": [
                {"Key": "pgha:stack", "Value": self.cfg.stack},
                {"Key": "pgha:project", "Value": self.cfg.project},
                {"Key": "pgha:drill", "Value": "restore-pitr"},
            ],
        }
        if self.restore_time is None:
            args["UseLatestRestorableTime"] = True
        else:
            args["RestoreTime"] = self.restore_time
        called = time.time()
        rds.restore_db_instance_to_point_in_time(**args)
        self.scratch_created = True
        rnd.event(
            "restore started",
            f"{self.primary_id} as of "
            f"{self.restore_time.isoformat() if self.restore_time else 'the latest restorable time'} "
            f"into {self.scratch_id}",
            at=called,
        )
        restored, available_at = self._wait_status(
            self.scratch_id, self.cfg.region, lambda i: i.get("DBInstanceStatus") == "available"
        )
        rnd.event("scratch instance available", (restored.get("Endpoint") or {}).get("Address", ""), at=available_at)
        rnd.measure_restore(
            None, [], called, available_at, "from the API call until the scratch instance was available"
        )
        subnet_group = (restored.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
        groups = sorted(g["VpcSecurityGroupId"] for g in restored.get("VpcSecurityGroups") or [])
        rnd.facts.update(
            scratch=self.scratch_id,
            subnet_group=subnet_group,
            security_groups=groups,
            restore_time=self.restore_time.isoformat() if self.restore_time else "latest",
        )
        rnd.check("scratch instance available", restored.get("DBInstanceStatus") == "available")
        rnd.check(
            "in the primary's subnet group and security groups",
            subnet_group == args["DBSubnetGroupName"] and groups == sorted(args["VpcSecurityGroupIds"]),
            f"{subnet_group}, {', '.join(groups)}",
        )
        rnd.check("not publicly accessible", not restored.get("PubliclyAccessible"))
        self.restore_checked = True
        if self.options.keep:
            rnd.event(
                "scratch instance kept",
                f"delete it with: aws rds delete-db-instance --db-instance-identifier "
                f"{self.scratch_id} --skip-final-snapshot",
            )
            return
        self._delete_scratch()
        rnd.event("scratch instance deleted", self.scratch_id)
        rnd.check("scratch instance deleted", not self._exists(self.scratch_id))

    def _exists(self, identifier: str) -> bool:
        try:
            self.describe(identifier)
            return True
        except DrillRefused:
            return False

    def _delete_scratch(self) -> None:
        rds = self.client("rds")
        if self.describe(self.scratch_id).get("DeletionProtection"):
            rds.modify_db_instance(
                DBInstanceIdentifier=self.scratch_id, DeletionProtection=False, ApplyImmediately=True
            )
        rds.delete_db_instance(
            DBInstanceIdentifier=self.scratch_id, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
        )
        holds_within(
            f"{self.scratch_id} to be deleted",
            lambda: not self._exists(self.scratch_id),
            WAIT_TIMEOUT_S,
            self.options.poll_s,
        )


def replica_rollback_advice(
    plan: Plan | None, stack: str, subject_id: str, primary_id: str, replicas: int, region: str
) -> list[str]:
    """The steps that give the stack its replica back after promote-replica, naming URNs from ``plan``.

    Not ``pulumi state delete '<urn>'``: Pulumi refuses it for a resource others depend on (the replica's
    alarms and the event subscription) and, without --force, for a protected one; ``--target-dependents``
    would drop those dependents from the state too, and as their names are generated, ``pulumi up`` would
    create second copies beside the old ones. Instead the promoted instance leaves the replica's identifier
    (renamed, or deleted), so ``pulumi refresh`` of that URN finds nothing and drops it from the state,
    while its dependents stay as they are; a protected one is unprotected first (``pulumi up`` protects the
    new replica again, as the program declares). ``pulumi up`` then creates the replica again.
    """
    resource = next((r for r in getattr(plan, "resources", []) if r.name == subject_id), None)
    urn = resource.urn if resource is not None else f"<urn of {subject_id}: pgha plan --stack {stack} --json>"
    dependents = sorted(
        r.name for r in getattr(plan, "resources", []) if resource is not None and resource.urn in r.dependencies
    )
    steps = [
        f"keep the promoted copy under another name: aws rds modify-db-instance --region {region} "
        f"--db-instance-identifier {subject_id} --new-db-instance-identifier {subject_id}-promoted "
        f"--apply-immediately, then aws rds wait db-instance-available --region {region} "
        f"--db-instance-identifier {subject_id}-promoted (or delete it)"
    ]
    if resource is None or resource.protect:
        steps.append(
            f"pulumi state unprotect --stack {stack} '{urn}'"
            + (
                " (it is protected: Pulumi keeps a protected resource; pulumi up protects the new replica again)"
                if resource is not None
                else " (if the stack protects it)"
            )
        )
    kept = f"; its dependents stay in the state: {', '.join(dependents)}" if dependents else ""
    steps.append(
        f"pulumi refresh --stack {stack} --target '{urn}' --yes: no instance named {subject_id} exists "
        f"any more, so the refresh drops it from the state{kept} (not pulumi state delete: it refuses a "
        "resource others depend on, and --target-dependents would make pulumi up create those again "
        "beside the old ones)"
    )
    steps.append(f"pulumi up --stack {stack}: creates {subject_id} again as a replica of {primary_id}")
    return [
        f"{subject_id} is now a standalone database outside the stack's replication; keep pgha:replicas = "
        f"{replicas} (the stack config does not change) and let the program recreate the replica:"
    ] + [f"  {number}. {step}" for number, step in enumerate(steps, 1)]
