"""components/kms.py: a pgha key lets CloudWatch Logs use it only for this stack's log groups (moved from
test_hardening.py)."""

from __future__ import annotations

import fnmatch
import json

from pgha.ci.harness import Plan, RegisteredResource, _fake_id

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _logs_statement(key: RegisteredResource) -> dict:
    policy = json.loads(key.inputs["policy"])
    return next(s for s in policy["Statement"] if s["Sid"] == "CloudWatchLogsEncryptsDatabaseLogs")


def test_logs_may_use_a_key_only_for_this_stacks_log_groups(any_plan: Plan) -> None:
    keys = {
        f"arn:aws:kms:{any_plan.region_of(k)}:123456789012:key/{_fake_id(k.name)}": k
        for k in any_plan.of_type("aws:kms/key:Key")
    }
    groups = any_plan.of_type(LOG_GROUP)
    assert groups
    for key in keys.values():
        patterns = _logs_statement(key)["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        assert all(
            f":log-group:/aws/rds/instance/pgha-{any_plan.stack}-" in p
            or f":log-group:/aws/lambda/pgha-{any_plan.stack}-" in p
            or f":log-group:/pgha/pgha-{any_plan.stack}-" in p
            for p in patterns
        ), patterns
    for group in groups:  # and every log group the stack makes is inside its key's scope
        key = keys[group.inputs["kmsKeyId"]]
        patterns = _logs_statement(key)["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        suffixes = [p.split(":log-group:", 1)[1] for p in patterns]
        assert any(fnmatch.fnmatchcase(group.inputs["name"], s) for s in suffixes), group.inputs["name"]


def test_another_stacks_log_group_is_outside_the_key_scope(prod_plan: Plan) -> None:
    patterns = _logs_statement(prod_plan.get("pgha-prod-key"))["Condition"]["ArnLike"][
        "kms:EncryptionContext:aws:logs:arn"
    ]
    for other in ("/aws/rds/instance/pgha-dev-primary/postgresql", "/aws/lambda/someone-else", "/pgha/pgha-prodx"):
        arn = f"arn:aws:logs:eu-west-1:123456789012:log-group:{other}"
        assert not any(fnmatch.fnmatchcase(arn, p) for p in patterns), other
