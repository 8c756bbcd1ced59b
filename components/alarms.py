"""CloudWatch alarms on the seed's KPIs and RDS event notifications, to one SNS topic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

GIB = 1024**3


@dataclass(frozen=True)
class MonitoredInstance:
    """One DB instance to watch; replicas also get a replica-lag alarm."""

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


@dataclass(frozen=True)
class DatabaseAlarmsArgs:
    """What to watch and where to send alerts."""

    kms_key_id: pulumi.Input[str]
    instances: Sequence[MonitoredInstance]
    allocated_storage_gib: int
    max_connections: int
    alarm_email: str | None = None
    thresholds: Thresholds = Thresholds()


def alarm_specs(args: DatabaseAlarmsArgs, instance: MonitoredInstance) -> list[dict]:
    """The alarms one instance gets: metric, comparison and threshold for each KPI."""
    t = args.thresholds
    specs = [
        {"key": "cpu", "metric": "CPUUtilization", "op": "GreaterThanThreshold", "threshold": t.cpu_percent,
         "what": f"CPU above {t.cpu_percent:.0f}%"},
        {"key": "storage", "metric": "FreeStorageSpace", "op": "LessThanThreshold",
         "threshold": int(args.allocated_storage_gib * GIB * t.free_storage_fraction),
         "what": f"free storage below {t.free_storage_fraction:.0%} of {args.allocated_storage_gib} GiB"},
        {"key": "connections", "metric": "DatabaseConnections", "op": "GreaterThanThreshold",
         "threshold": int(args.max_connections * t.connection_utilisation),
         "what": f"connections above {t.connection_utilisation:.0%} of max_connections {args.max_connections}"},
        {"key": "memory", "metric": "FreeableMemory", "op": "LessThanThreshold",
         "threshold": t.freeable_memory_bytes, "what": "freeable memory below 256 MiB"},
    ]
    if instance.replica:
        specs.append({"key": "replica-lag", "metric": "ReplicaLag", "op": "GreaterThanThreshold",
                      "threshold": t.replica_lag_seconds, "what": f"replica lag above {t.replica_lag_seconds:g} s"})
    return specs


class DatabaseAlarms(pulumi.ComponentResource):
    """An encrypted SNS topic, KPI alarms per instance and an RDS event subscription."""

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

        for instance in args.instances:
            for spec in alarm_specs(args, instance):
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{instance.label}-{spec['key']}",
                    alarm_description=pulumi.Output.concat(spec["what"], " on ", instance.identifier),
                    namespace="AWS/RDS",
                    metric_name=spec["metric"],
                    dimensions={"DBInstanceIdentifier": instance.identifier},
                    statistic="Maximum" if spec["metric"] in ("ReplicaLag", "CPUUtilization") else "Average",
                    period=60,
                    evaluation_periods=5,
                    datapoints_to_alarm=3,
                    comparison_operator=spec["op"],
                    threshold=spec["threshold"],
                    treat_missing_data="breaching" if spec["metric"] == "ReplicaLag" else "missing",
                    alarm_actions=[self.topic.arn],
                    ok_actions=[self.topic.arn],
                    opts=child,
                )

        aws.rds.EventSubscription(
            f"{name}-events",
            sns_topic=self.topic.arn,
            source_type="db-instance",
            source_ids=[instance.identifier for instance in args.instances],
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
