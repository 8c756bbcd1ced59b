"""CloudWatch alarms on the database KPIs, to one encrypted SNS topic, plus RDS event notifications."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

GIB = 1024**3


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


@dataclass(frozen=True)
class MonitoredInstance:
    """One RDS instance to watch; replicas also get a replica-lag alarm."""

    label: str
    identifier: pulumi.Input[str]
    replica: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Alarm thresholds, from the seed's KPIs where it gives one."""

    replica_lag_seconds: float = 1.0  # "streaming replication lag < 1 second"
    connection_utilisation: float = 0.8  # "connection utilization < 80% peak capacity"
    cpu_percent: float = 80.0
    free_storage_fraction: float = 0.1
    freeable_memory_bytes: int = 256 * 1024**2


def rds_alarm_specs(
    instances: Sequence[MonitoredInstance], allocated_storage_gib: int, max_connections: int,
    t: Thresholds = Thresholds(),
) -> list[AlarmSpec]:
    """CPU, free storage, connections and memory on every instance; replica lag on every replica."""
    gt, lt = "GreaterThanThreshold", "LessThanThreshold"
    specs = []
    for i in instances:
        kpis = [
            ("cpu", "CPUUtilization", gt, t.cpu_percent, f"CPU above {t.cpu_percent:.0f}%", "Maximum", "missing"),
            ("storage", "FreeStorageSpace", lt, int(allocated_storage_gib * GIB * t.free_storage_fraction),
             f"free storage below {t.free_storage_fraction:.0%} of {allocated_storage_gib} GiB", "Average", "missing"),
            ("connections", "DatabaseConnections", gt, int(max_connections * t.connection_utilisation),
             f"connections above {t.connection_utilisation:.0%} of max_connections {max_connections}", "Average",
             "missing"),
            ("memory", "FreeableMemory", lt, t.freeable_memory_bytes, "freeable memory below 256 MiB", "Average",
             "missing"),
        ]
        if i.replica:
            kpis.append(("replica-lag", "ReplicaLag", gt, t.replica_lag_seconds,
                         f"replica lag above {t.replica_lag_seconds:g} s", "Maximum", "breaching"))
        specs += [
            AlarmSpec(f"{i.label}-{kpi}", "AWS/RDS", metric, {"DBInstanceIdentifier": i.identifier}, comparison,
                      threshold, what, statistic, missing)
            for kpi, metric, comparison, threshold, what, statistic, missing in kpis
        ]
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
                namespace=spec.namespace,
                metric_name=spec.metric,
                dimensions=dict(spec.dimensions),
                statistic=spec.statistic,
                period=60,
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
                event_categories=["availability", "failover", "failure", "low storage", "maintenance", "recovery"],
                opts=child,
            )
        self.register_outputs({"topicArn": self.topic.arn})


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
