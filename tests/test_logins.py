"""components/logins.py: one generated password per application login, in a CMK-encrypted secret,
and the schema hook creating the roles once the secrets hold them (moved from test_hardening.py)."""

from __future__ import annotations

import json

from pgha.ci.harness import Plan, Secret


def test_application_logins_have_generated_passwords_in_cmk_encrypted_secrets(any_plan: Plan) -> None:
    stack = any_plan.stack
    arns = any_plan.outputs["appSecretArns"]
    assert set(arns) == {"pgha_app", "pgha_exec"}
    assert any_plan.outputs["appSecretArn"] == arns["pgha_app"]
    for slug in ("pgha-app", "pgha-exec"):
        secret = any_plan.get(f"pgha-{stack}-logins-{slug}")
        assert secret.inputs["kmsKeyId"] == any_plan.outputs["kmsKeyArn"]
        value = any_plan.get(f"pgha-{stack}-logins-{slug}-value")
        assert secret.urn in value.dependencies
        # the secret's value is a secret in the state: never plaintext
        assert isinstance(value.inputs["secretString"], Secret)
        content = json.loads(value.inputs["secretString"].value)
        assert content["username"] == slug.replace("-", "_") and len(content["password"]) >= 32
        password = any_plan.get(f"pgha-{stack}-logins-{slug}-password")
        assert password.urn in value.dependencies and password.inputs["length"] >= 32


def test_schema_hook_creates_the_logins_after_their_secrets_hold_a_value(any_plan: Plan) -> None:
    stack = any_plan.stack
    invocation = any_plan.get(f"pgha-{stack}-schema-apply")
    event = json.loads(invocation.inputs["input"])
    arns = any_plan.outputs["appSecretArns"]
    assert event["logins"] == [
        {"secretArn": arns["pgha_app"], "memberOf": "application_role"},
        {"secretArn": arns["pgha_exec"], "memberOf": "executive_role"},
    ]
    assert "password" not in invocation.inputs["input"]
    for slug in ("pgha-app", "pgha-exec"):
        assert any_plan.get(f"pgha-{stack}-logins-{slug}-value").urn in invocation.dependencies
    assert {"login-pgha_app", "login-pgha_exec"} <= set(invocation.inputs["triggers"])
