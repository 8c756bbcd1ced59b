"""CloudWatch alarms on the database KPIs, to one encrypted SNS topic, plus RDS event notifications."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

GIB = 1024**3

# --- Replica lag that means lag -----------------------------------------------------------------
# How RDS computes ReplicaLag for PostgreSQL: on the replica, now() - pg_last_xact_replay_timestamp()
# (AWS RDS User Guide, "Monitoring and tuning the replication process", USER_PostgreSQL.Replication.
# ReadReplicas.Monitor). pg_last_xact_replay_timestamp() is the primary-side time of the last replayed
# COMMIT/ABORT record, so while the primary commits nothing the value grows by one second per second
# although the replica has replayed everything: the well-known idle-primary false positive
# (bucardo/check_postgres#121, prometheus-community/postgres_exporter#385 and #534,
# cloudnative-pg/cloudnative-pg#1814 and #2744; their fix, comparing receive and replay LSNs, is not
# available as a CloudWatch metric). A plain "ReplicaLag > 1 s" alarm therefore pages every quiet night.
#
# What pgha alarms on instead (period 60 s, 3 of 5 datapoints, missing data not breaching):
# - in-region replica: IF(primary TransactionLogsGeneration >= WAL_FLOOR, replica ReplicaLag (Maximum), 0).
#   Lag only counts while the primary generates WAL at a rate that means commits every fraction of a second;
#   then "time since the last replayed commit" is real lag. An idle primary's own background WAL (RDS
#   housekeeping, or one forced segment switch every archive_timeout) can open the gate for a single minute,
#   which 3-of-5 does not turn into an alarm, while real lag under load breaches every minute.
# - cross-region DR replica: its ReplicaLag lives in the DR region and CloudWatch alarms cannot combine
#   metrics across regions, so it is watched from the primary's region: OldestReplicationSlotLag (bytes of
#   WAL the slowest replica has not received; RDS replicas stream through physical slots) divided by the
#   WAL rate = seconds behind. It is 0 on an idle primary by construction (bytes, not timestamps).
# - replication that stops altogether (error, stopped, terminated) is an RDS "read replica" event, sent
#   through the event subscription whether or not the primary writes; that is why missing lag data is
#   not treated as breaching (a promoted or replaced replica stops reporting and must not page forever).
#: Bytes/s of WAL from which the primary counts as writing (a committed row costs >= ~100 bytes of WAL).
WAL_FLOOR = 1024
PERIOD_SECONDS = 60


@dataclass(frozen=True)
class MetricInput:
    """One metric a metric-math alarm reads, under an id its expression uses."""

    id: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    statistic: str = "Average"
    namespace: str = "AWS/RDS"


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: a metric, how it compares, and the sentence the alert carries."""

    key: str
    namespace: str
    metric: str
    dimensions: Mapping[str, pulumi.Input[str]]
    comparison: str
    threshold: float
    what: str
    statistic: str = "Average"
    #: A replica that stops reporting lag, or a target group with no data, is itself a problem.
    missing_data: str = "missing"
    #: Metric math over ``inputs``; when set, ``metric`` is only the expression's label.
    expression: str | None = None
    inputs: Sequence[MetricInput] = ()


@dataclass(frozen=True)
class MonitoredInstance:
    """One RDS instance to watch.

    A replica whose ``source`` (the primary's identifier, same region) is known gets the gated
    replica-lag alarm; a primary with ``watch_slots`` gets the slowest-replica alarm (for a
    replica in another region). See the notes on replica lag above.
    """

    label: str
    identifier: pulumi.Input[str]
    replica: bool = False
    source: pulumi.Input[str] | None = None
    watch_slots: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Alarm thresholds, from the seed's KPIs where it gives one."""

    replica_lag_seconds: float = 1.0  # "streaming replication lag < 1 second"
    connection_utilisation: float = 0.8  # "connection utilization < 80% peak capacity"
    cpu_percent: float = 80.0
    #: Of the *configured* allocatedStorage, as fixed bytes: CloudWatch has no allocated-storage metric for
    #: RDS, so after storage autoscaling grows the disk the alarm fires at a smaller share of it (README).
    free_storage_fraction: float = 0.1
    freeable_memory_bytes: int = 256 * 1024**2


def rds_alarm_specs(
    instances: Sequence[MonitoredInstance],
    allocated_storage_gib: int,
    max_connections: int,
    t: Thresholds = Thresholds(),
) -> list[AlarmSpec]:
    """CPU, free storage, connections and memory on every instance; replica lag where it can mean lag."""
    gt, lt = "GreaterThanThreshold", "LessThanThreshold"
    specs = []
    for i in instances:
        kpis = [
            ("cpu", "CPUUtilization", gt, t.cpu_percent, f"CPU above {t.cpu_percent:.0f}%", "Maximum", "missing"),
            (
                "storage",
                "FreeStorageSpace",
                lt,
                int(allocated_storage_gib * GIB * t.free_storage_fraction),
                f"free storage below {t.free_storage_fraction:.0%} of {allocated_storage_gib} GiB",
                "Average",
                "missing",
            ),
            (
                "connections",
                "DatabaseConnections",
                gt,
                int(max_connections * t.connection_utilisation),
                f"connections above {t.connection_utilisation:.0%} of max_connections {max_connections}",
                "Average",
                "missing",
            ),
            (
                "memory",
                "FreeableMemory",
                lt,
                t.freeable_memory_bytes,
                "freeable memory below 256 MiB",
                "Average",
                "missing",
            ),
        ]
        specs += [
            AlarmSpec(
                f"{i.label}-{kpi}",
                "AWS/RDS",
                metric,
                {"DBInstanceIdentifier": i.identifier},
                comparison,
                threshold,
                what,
                statistic,
                missing,
            )
            for kpi, metric, comparison, threshold, what, statistic, missing in kpis
        ]
        specs += _lag_specs(i, t)
    return specs


def _lag_specs(i: MonitoredInstance, t: Thresholds) -> list[AlarmSpec]:
    """The replica-lag alarms of one instance (see the notes on replica lag at the top of this module)."""
    specs = []
    wal = lambda source: MetricInput("wal", "TransactionLogsGeneration", {"DBInstanceIdentifier": source})
    if i.replica and i.source is not None:
        specs.append(
            AlarmSpec(
                f"{i.label}-replica-lag",
                "AWS/RDS",
                "ReplicaLag while the primary writes",
                {"DBInstanceIdentifier": i.identifier},
                "GreaterThanThreshold",
                t.replica_lag_seconds,
                f"replica lag above {t.replica_lag_seconds:g} s while the primary writes",
                missing_data="notBreaching",
                expression=f"IF(wal >= {WAL_FLOOR}, lag, 0)",
                inputs=(
                    MetricInput("lag", "ReplicaLag", {"DBInstanceIdentifier": i.identifier}, "Maximum"),
                    wal(i.source),
                ),
            )
        )
    if i.watch_slots:
        specs.append(
            AlarmSpec(
                f"{i.label}-slowest-replica",
                "AWS/RDS",
                "seconds of WAL the slowest replica has not received",
                {"DBInstanceIdentifier": i.identifier},
                "GreaterThanThreshold",
                t.replica_lag_seconds,
                f"a replica (e.g. the DR replica) more than {t.replica_lag_seconds:g} s of WAL behind",
                missing_data="notBreaching",
                expression=f"IF(wal >= {WAL_FLOOR}, slot / wal, 0)",
                inputs=(
                    MetricInput("slot", "OldestReplicationSlotLag", {"DBInstanceIdentifier": i.identifier}, "Maximum"),
                    wal(i.identifier),
                ),
            )
        )
    return specs


@dataclass(frozen=True)
class DatabaseAlarmsArgs:
    """What to watch and where to send alerts."""

    kms_key_id: pulumi.Input[str]
    alarms: Sequence[AlarmSpec]
    alarm_email: str | None = None
    #: RDS instance identifiers whose failover/failure/maintenance events are sent too.
    rds_event_sources: Sequence[pulumi.Input[str]] = ()


class DatabaseAlarms(pulumi.ComponentResource):
    """An encrypted SNS topic, one CloudWatch alarm per spec, and (for RDS) an event subscription."""

    topic: aws.sns.Topic

    def __init__(self, name: str, args: DatabaseAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("pgha:alarms:DatabaseAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.topic = aws.sns.Topic(f"{name}-alerts", kms_master_key_id=args.kms_key_id, opts=child)
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self.topic.arn,
            policy=self.topic.arn.apply(_topic_policy),
            opts=child,
        )
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alerts-email", topic=self.topic.arn, protocol="email", endpoint=args.alarm_email, opts=child
            )

        for spec in args.alarms:
            aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                alarm_description=pulumi.Output.concat(
                    spec.what, " on ", *[pulumi.Output.concat(k, "=", v, " ") for k, v in spec.dimensions.items()]
                ),
                **_metric(spec),
                evaluation_periods=5,
                datapoints_to_alarm=3,
                comparison_operator=spec.comparison,
                threshold=spec.threshold,
                treat_missing_data=spec.missing_data,
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                opts=child,
            )

        if args.rds_event_sources:
            aws.rds.EventSubscription(
                f"{name}-events",
                sns_topic=self.topic.arn,
                source_type="db-instance",
                source_ids=list(args.rds_event_sources),
                # "read replica": replication error, stopped, terminated (lag alarms cannot see a stopped replica)
                event_categories=[
                    "availability",
                    "failover",
                    "failure",
                    "low storage",
                    "maintenance",
                    "read replica",
                    "recovery",
                ],
                opts=child,
            )
        self.register_outputs({"topicArn": self.topic.arn})


def _metric(spec: AlarmSpec) -> dict:
    """The alarm's metric: one metric and statistic, or a metric-math expression over its inputs."""
    if spec.expression is None:
        return {
            "namespace": spec.namespace,
            "metric_name": spec.metric,
            "dimensions": dict(spec.dimensions),
            "statistic": spec.statistic,
            "period": PERIOD_SECONDS,
        }
    return {
        "metric_queries": [
            {"id": "e1", "expression": spec.expression, "label": spec.metric, "return_data": True},
            *[
                {
                    "id": m.id,
                    "return_data": False,
                    "metric": {
                        "namespace": m.namespace,
                        "metric_name": m.metric,
                        "dimensions": dict(m.dimensions),
                        "stat": m.statistic,
                        "period": PERIOD_SECONDS,
                    },
                }
                for m in spec.inputs
            ],
        ]
    }


def _topic_policy(topic_arn: str) -> str:
    """Only CloudWatch alarms and RDS events of this account may publish."""
    account = topic_arn.split(":")[4]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AlarmsAndRdsEventsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.rds.amazonaws.com"]},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account}},
                }
            ],
        }
    )
