"""`pgha preview-check` on documents in the shape `pulumi preview --json` writes.

The documents in tests/previews/ follow the engine's PreviewDigest (pulumi/pulumi
sdk/pkg/display/json.go, filled by ShowPreviewDigest in pkg/backend/display/json.go): config,
steps (op, urn, provider, oldState/newState as apitype.ResourceV3, diffReasons, replaceReasons,
detailedDiff {path: {kind, inputDiff}}), diagnostics, duration in nanoseconds, changeSummary. They
carry the URNs the program really registers; a replacement is the engine's three steps
create-replacement, replace, delete-replaced for one URN.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pgha.ci.harness import PROJECT_DIR
from pgha.ci.preview_check import PreviewFormatError, check_preview, urn_type

PREVIEWS = Path(__file__).parent / "previews"


def preview_check(arg: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgha", "preview-check", arg],
        cwd=PROJECT_DIR,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_replacing_the_key_and_the_database_exits_3_naming_urn_op_and_reason() -> None:
    result = preview_check(str(PREVIEWS / "prod-replace-key-and-primary.json"))
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "DANGEROUS replace of KMS key: urn:pulumi:prod::pgha::pgha:rds:RdsPostgres$aws:kms/key:Key::pgha-prod-key "
        "(ops: create-replacement, replace, delete-replaced; because: customerMasterKeySpec)"
    )
    assert (
        "aws:rds/instance:Instance::pgha-prod-primary (ops: create-replacement, replace, delete-replaced; "
        "because: kmsKeyId)" in lines[1]
    )
    assert lines[-1] == "8 steps (replace 2, same 100); 2 dangerous"


def test_deleting_a_replica_is_dangerous_its_alarms_are_not() -> None:
    result = preview_check(str(PREVIEWS / "dev-delete-replica.json"))
    assert result.returncode == 3
    dangerous = [line for line in result.stdout.splitlines() if line.startswith("DANGEROUS")]
    assert dangerous == [
        "DANGEROUS delete of RDS DB instance: urn:pulumi:dev::pgha::pgha:rds:RdsPostgres$aws:rds/instance:"
        "Instance::pgha-dev-replica-2 (ops: delete; because: removed from the program)"
    ]
    assert "pgha-dev-alarms-replica-2-cpu (removed from the program)" in result.stdout


def test_updates_and_replacing_a_subscription_pass() -> None:
    result = preview_check(str(PREVIEWS / "prod-storage-update.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "replace urn:pulumi:prod::pgha::pgha:alarms:DatabaseAlarms$aws:sns/topicSubscription:TopicSubscription"
        "::pgha-prod-alarms-alerts-email (endpoint)" in result.stdout
    )


def test_detailed_diff_replace_kinds_count_without_replace_reasons() -> None:
    document = json.loads((PREVIEWS / "prod-replace-key-and-primary.json").read_text())
    for step in document["steps"]:
        step.pop("replaceReasons", None)
    findings = check_preview(json.dumps(document))
    assert {f.urn.rsplit("::", 1)[1]: f.reasons for f in findings.dangerous} == {
        "pgha-prod-key": ["customerMasterKeySpec"],
        "pgha-prod-primary": ["kmsKeyId"],
    }


def test_a_protected_resource_is_marked() -> None:
    document = json.loads((PREVIEWS / "dev-delete-replica.json").read_text())
    for step in document["steps"]:
        if step["op"] == "delete":
            step["oldState"]["protect"] = True
    result = preview_check("-", stdin=json.dumps(document))
    assert result.returncode == 3
    assert "pgha-dev-replica-2 (ops: delete; because: removed from the program) [protected" in result.stdout


def failed_preview(base: str, steps: int) -> dict[str, object]:
    """A preview the engine stopped part-way: the first ``steps`` steps of ``base`` and an error diagnostic."""
    document = json.loads((PREVIEWS / base).read_text())
    document["steps"] = document["steps"][:steps]
    document.setdefault("diagnostics", []).append(
        {
            "urn": "urn:pulumi:prod::pgha::pulumi:pulumi:Stack::pgha-prod",
            "message": "error: an unhandled error occurred: Program exited with non-zero exit code: 1\n",
            "severity": "error",
        }
    )
    return document


def test_a_failed_preview_exits_1_saying_the_check_is_incomplete() -> None:
    # the steps before the failure hold no replacement: "0 dangerous" must not pass it
    result = preview_check("-", stdin=json.dumps(failed_preview("prod-storage-update.json", steps=2)))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "preview failed: error: an unhandled error occurred" in result.stdout
    assert "the preview failed" in result.stderr and "incomplete" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_preview_that_already_shows_a_dangerous_change_exits_3_and_says_it_is_incomplete() -> None:
    result = preview_check("-", stdin=json.dumps(failed_preview("prod-replace-key-and-primary.json", steps=4)))
    assert result.returncode == 3, result.stdout + result.stderr
    assert [line.split(":", 1)[0] for line in result.stdout.splitlines() if line.startswith("DANGEROUS")] == [
        "DANGEROUS replace of KMS key"
    ]
    assert "incomplete" in result.stderr


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"version": 3, "deployment": {"resources": []}}', "not a `pulumi preview --json` document"),
        ("[]", "expected an object"),
        ("Previewing update (dev):\n  + pulumi:pulumi:Stack pgha-dev create", "not JSON"),
        ('{"steps": [{"urn": "urn:pulumi:dev::pgha::pulumi:pulumi:Stack::pgha-dev"}]}', "every step needs an op"),
        (
            '{"steps": [{"op": "replace", "urn": "urn:pulumi:dev::pgha::aws:kms/key:Key::k", "replaceReasons": "x"}]}',
            "replaceReasons of step urn:pulumi:dev::pgha::aws:kms/key:Key::k is not a list of strings",
        ),
        (
            '{"steps": [{"op": "replace", "urn": "urn:pulumi:dev::pgha::aws:kms/key:Key::k", '
            '"detailedDiff": {"a": 1}}]}',
            "detailedDiff of step urn:pulumi:dev::pgha::aws:kms/key:Key::k is not a map of maps",
        ),
        ('{"steps": [], "diagnostics": ["boom"]}', "diagnostics of the document is not a list of maps"),
        ('{"steps": [], "changeSummary": [1]}', "changeSummary of the document is not a map of numbers"),
    ],
)
def test_a_file_that_is_not_a_preview_exits_2(text: str, why: str, tmp_path: Path) -> None:
    path = tmp_path / "preview.json"
    path.write_text(text)
    result = preview_check(str(path))
    assert result.returncode == 2
    assert why in result.stderr and "Traceback" not in result.stderr


def test_a_missing_file_exits_2() -> None:
    result = preview_check("/nonexistent/preview.json")
    assert result.returncode == 2 and "No such file" in result.stderr


def test_urn_types_are_read_from_the_parent_chain() -> None:
    assert (
        urn_type("urn:pulumi:prod::pgha::pgha:dr:DrReplica$aws:rds/instance:Instance::pgha-prod-dr-replica")
        == "aws:rds/instance:Instance"
    )
    with pytest.raises(PreviewFormatError):
        urn_type("pgha-prod-primary")


def test_replacing_the_patroni_data_attachments_is_dangerous() -> None:
    """A new deviceName replaces each node's volume attachment; its delete stops the node (stop_instance_before_
    detaching), so a real preview showing it must fail the check. The URNs and inputs are the program's own."""
    from pgha.ci.harness import run_program

    plan = run_program("prod", {"engine": "patroni"})
    attachments = [r for r in plan.resources if r.type == "aws:ec2/volumeAttachment:VolumeAttachment"]
    assert len(attachments) == 3
    steps = []
    for r in attachments:
        old = {"urn": r.urn, "custom": True, "type": r.type, "inputs": dict(r.inputs)}
        new = {**old, "inputs": {**r.inputs, "deviceName": "/dev/sdg"}}
        for op in ("create-replacement", "replace", "delete-replaced"):
            steps.append(
                {
                    "op": op,
                    "urn": r.urn,
                    "oldState": old,
                    "newState": new,
                    "replaceReasons": ["deviceName"],
                    "detailedDiff": {"deviceName": {"kind": "update-replace", "inputDiff": True}},
                }
            )
    document = {
        "config": {"pgha:engine": "patroni"},
        "steps": steps,
        "duration": 1,
        "changeSummary": {"replace": 3, "same": len(plan.resources) - 3},
    }
    result = preview_check("-", stdin=json.dumps(document))
    assert result.returncode == 3, result.stdout + result.stderr
    dangerous = [line for line in result.stdout.splitlines() if line.startswith("DANGEROUS")]
    assert dangerous == [
        f"DANGEROUS replace of EBS volume attachment: {r.urn} "
        "(ops: create-replacement, replace, delete-replaced; because: deviceName)"
        for r in attachments
    ]
    assert result.stdout.splitlines()[-1].endswith("; 3 dangerous")
