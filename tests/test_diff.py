"""`pgha diff`: the program at a base commit vs the working tree, classed create/update/replace/delete.

Base commits are made from the working tree plus an edit with a throwaway index and
`git commit-tree`: no branch, index or file of the repository changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pgha.ci import snapshot
from pgha.ci.diff import DiffResult, compare, render_markdown, render_text
from pgha.ci.harness import PROJECT_DIR, run_program


def git(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=PROJECT_DIR, env=env, input=stdin, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def base_commit(edits: dict[str, tuple[str, str] | None]) -> str:
    """The working tree with ``path -> (old text, new text)`` replacements (None deletes the file)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_AUTHOR_NAME": "pgha-test",
            "GIT_AUTHOR_EMAIL": "test@pgha.invalid",
            "GIT_COMMITTER_NAME": "pgha-test",
            "GIT_COMMITTER_EMAIL": "test@pgha.invalid",
        }
        git("add", "-A", env=env)
        for path, edit in edits.items():
            if edit is None:
                git("rm", "--cached", "--quiet", path, env=env)
                continue
            old, new = edit
            text = (PROJECT_DIR / path).read_text()
            assert old in text, f"{old!r} not in {path}"
            blob = git("hash-object", "-w", "--stdin", stdin=text.replace(old, new))
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git("write-tree", env=env)
        return git("commit-tree", tree, "-p", "HEAD", "-m", "pgha diff test base", env=env)


def pgha_diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgha", "diff", *args], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300
    )


def test_identical_program_has_no_changes() -> None:
    result = pgha_diff("--stack", "prod", "--base", base_commit({}), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["changes"] == [] and data["summary"]["dangerous"] == 0


def test_storage_growth_is_an_update_and_not_dangerous() -> None:
    base = base_commit({"Pulumi.prod.yaml": ("pgha:allocatedStorage: 200", "pgha:allocatedStorage: 100")})
    result = pgha_diff("--stack", "prod", "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    changes = {c["name"]: c for c in json.loads(result.stdout)["changes"]}
    primary = changes["pgha-prod-primary"]
    assert primary["action"] == "update" and not primary["dangerous"]
    assert primary["inputs"]["allocatedStorage"] == {"old": "100", "new": "200"}


def test_making_the_dr_replica_multi_az_is_an_update_in_place_and_not_dangerous() -> None:
    """A production DR replica declared single-AZ before is modified in place (multiAz is not force-new)."""
    base = base_commit({"components/stack.py": ("multi_az=cfg.production,", "multi_az=False,")})
    result = pgha_diff("--stack", "prod", "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["summary"]["dangerous"] == 0
    assert [(c["name"], c["action"], c["inputs"]) for c in data["changes"]] == [
        ("pgha-prod-dr-replica", "update", {"multiAz": {"old": "false", "new": "true"}})
    ]


def test_a_force_new_input_replaces_the_database_and_exits_3() -> None:
    base = base_commit({"components/rds.py": ('db_name: str = "app"', 'db_name: str = "appdb"')})
    result = pgha_diff("--stack", "prod", "--base", base, "--markdown")
    assert result.returncode == 3, result.stderr
    comment = result.stdout
    dangerous, full_list = comment.split("<details>")
    assert "⛔" in dangerous
    assert re.search(r"\| \*\*replace\*\* \| `pgha-prod-primary`( \(protected\))? \| RDS DB instance \|", dangerous)
    assert 'dbName: "appdb" → "app"' in dangerous
    # the replicas take their database from the primary: not replaced
    assert "pgha-prod-replica-1" not in dangerous
    assert "| replace | `pgha-prod-primary` |" in full_list


def test_removing_a_replica_is_a_dangerous_delete() -> None:
    base = base_commit({"Pulumi.dev.yaml": ("pgha:replicas: 1", "pgha:replicas: 2")})
    result = pgha_diff("--stack", "dev", "--base", base)
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1].startswith("DANGEROUS delete pgha-dev-replica-2 (RDS DB instance)")
    # its alarms and log groups go too, but they hold nothing that cannot be recreated
    assert "- delete  pgha-dev-alarms-replica-2-cpu  aws:cloudwatch/metricAlarm:MetricAlarm" in result.stdout
    assert "; 1 dangerous" in result.stdout


def test_a_replaced_key_replaces_what_it_encrypts() -> None:
    base = base_commit(
        {
            "components/kms.py": (
                "enable_key_rotation=True,",
                'enable_key_rotation=True, customer_master_key_spec="RSA_2048",',
            )
        }
    )
    result = pgha_diff("--stack", "dev", "--base", base, "--json")
    assert result.returncode == 3, result.stderr
    dangerous = {c["name"]: c for c in json.loads(result.stdout)["dangerous"]}
    assert dangerous["pgha-dev-key"]["reasons"] == ['customerMasterKeySpec: "RSA_2048" → "SYMMETRIC_DEFAULT"']
    assert dangerous["pgha-dev-primary"]["reasons"] == ["kmsKeyId: new value from the replacement of pgha-dev-key"]


def test_a_stack_the_base_does_not_have_is_all_creates() -> None:
    result = pgha_diff("--stack", "dev", "--base", base_commit({"Pulumi.dev.yaml": None}), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["notes"] and data["summary"]["create"] == len(data["changes"]) > 40


def test_unknown_ref_and_unknown_stack_are_bad_input() -> None:
    unknown_ref = pgha_diff("--stack", "dev", "--base", "no-such-branch-xyz")
    assert unknown_ref.returncode == 2
    assert "unknown git ref 'no-such-branch-xyz'" in unknown_ref.stderr
    unknown_stack = pgha_diff("--stack", "staging", "--base", "HEAD")
    assert unknown_stack.returncode == 2
    assert "Pulumi.staging.yaml does not exist" in unknown_stack.stderr
    assert "Traceback" not in unknown_ref.stderr + unknown_stack.stderr


def test_the_temporary_worktree_is_removed() -> None:
    before = git("worktree", "list", "--porcelain")
    assert pgha_diff("--stack", "dev", "--base", "HEAD").returncode in (0, 3)
    assert git("worktree", "list", "--porcelain") == before
    assert "pgha-diff-" not in before


# --- comparing snapshots (no git) ------------------------------------------------------------

URN = "urn:pulumi:dev::pgha::pgha:patroni:PatroniCluster$"


def resource(type_: str, name: str, inputs: dict, options: dict | None = None) -> dict:
    return {
        "type": type_,
        "name": name,
        "urn": f"{URN}{type_}::{name}",
        "parent": "",
        "provider": "",
        "custom": True,
        "inputs": inputs,
        "dependencies": [],
        "property_dependencies": {},
        "options": options or {},
    }


def test_secret_changes_are_seen_but_never_shown() -> None:
    salt = "test-salt"
    old = snapshot._encode({"secretString": _Secret("hunter2-old")}, salt, repr)
    new = snapshot._encode({"secretString": _Secret("hunter2-new")}, salt, repr)
    changes = compare(
        [resource("aws:secretsmanager/secretVersion:SecretVersion", "creds-v", old)],
        [resource("aws:secretsmanager/secretVersion:SecretVersion", "creds-v", new)],
    )
    assert [c.action for c in changes] == ["update"]
    result = DiffResult("dev", "main", "0" * 40, changes)
    shown = render_text(result) + render_markdown(result) + json.dumps(result.to_json())
    assert "hunter2" not in shown and old["secretString"][snapshot.SECRET_KEY] not in shown
    assert result.to_json()["changes"][0]["inputs"]["secretString"] == {"old": "[secret]", "new": "[secret]"}


def test_snapshot_of_the_patroni_stack_holds_no_plaintext_secret() -> None:
    taken = json.dumps(snapshot.take("dev", {"engine": "patroni"}, "salt"))
    assert "mock-password" not in taken and snapshot.SECRET_KEY in taken


def test_protected_resources_are_marked() -> None:
    volume = "aws:ebs/volume:Volume"
    old = [resource(volume, "node-1-data", {"availabilityZone": "eu-west-1a"}, {"protect": True})]
    new = [resource(volume, "node-1-data", {"availabilityZone": "eu-west-1b"}, {"protect": True})]
    result = DiffResult("prod", "main", "0" * 40, compare(old, new))
    assert result.dangerous[0].protected
    assert "DANGEROUS replace node-1-data (EBS volume) [protected]: availabilityZone" in render_text(result)
    assert "| **replace** | `node-1-data` (protected) | EBS volume |" in render_markdown(result)
    deleted = DiffResult("prod", "main", "0" * 40, compare(old, []))
    assert deleted.to_json()["dangerous"][0]["protected"] is True


def test_ignore_changes_hides_and_replace_on_changes_forces() -> None:
    instance = "aws:ec2/instance:Instance"
    old = [
        resource(instance, "node-1", {"launchTemplate": {"id": "lt-1", "version": "1"}}, {"ignoreChanges": []}),
        resource("aws:sns/topic:Topic", "alarms", {"displayName": "a"}),
    ]
    new = [
        resource(
            instance,
            "node-1",
            {"launchTemplate": {"id": "lt-1", "version": "2"}},
            {"ignoreChanges": ["launchTemplate"]},
        ),
        resource("aws:sns/topic:Topic", "alarms", {"displayName": "b"}, {"replaceOnChanges": ["displayName"]}),
    ]
    changes = {c.name: c for c in compare(old, new)}
    assert "node-1" not in changes  # pgha's Patroni nodes roll one at a time instead (docs/patroni.md)
    assert changes["alarms"].action == "replace" and not changes["alarms"].dangerous
    new[0]["options"] = {}
    node = {c.name: c for c in compare(old, new)}["node-1"]
    assert node.dangerous and node.reasons[0].startswith('launchTemplate.version: "1" → "2"')


class _Secret:
    """Stands in for the harness's Secret (matched by class name, as across trees)."""

    def __init__(self, value: object):
        self.value = value


_Secret.__name__ = "Secret"


def test_the_docs_name_every_stateful_type_and_its_source() -> None:
    from pgha.ci.stateful import STATEFUL_TYPES

    docs = (PROJECT_DIR / "docs" / "ci.md").read_text()
    for stateful in STATEFUL_TYPES.values():
        source_file = stateful.source.split()[1]
        assert f"| {stateful.label} | `{source_file}`" in docs


def test_a_new_login_password_reruns_the_schema_hook() -> None:
    base = base_commit({"components/logins.py": ("password_length: int = 40", "password_length: int = 32")})
    result = pgha_diff("--stack", "dev", "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    changes = {c["name"]: c for c in json.loads(result.stdout)["changes"]}
    # a new secret value is a new secret version, whose id the invocation's triggers carry
    assert {"triggers.login-pgha_app", "triggers.login-pgha_exec"} <= set(changes["pgha-dev-schema-apply"]["inputs"])
    assert changes["pgha-dev-logins-pgha-app-value"]["inputs"]["secretString"] == {"old": "[secret]", "new": "[secret]"}


ATTACHMENT = "aws:ec2/volumeAttachment:VolumeAttachment"


def test_a_new_device_name_replaces_every_patroni_data_attachment_and_is_dangerous() -> None:
    """deviceName is ForceNew, and deleting an attachment made with stopInstanceBeforeDetaching stops the node:
    one edit of the attachment code would stop every node, so it must not pass as an update."""
    head = snapshot.take("prod", {"engine": "patroni"}, "salt")["resources"]
    base = json.loads(json.dumps(head))
    for r in base:
        if r["type"] == ATTACHMENT:
            assert r["inputs"]["stopInstanceBeforeDetaching"] is True
            r["inputs"]["deviceName"] = "/dev/sdg"
    result = DiffResult("prod", "main", "0" * 40, compare(base, head))
    assert sorted((c.name, c.action) for c in result.changes) == [
        (f"pgha-prod-patroni-{n}-data-attach", "replace") for n in (1, 2, 3)
    ]
    assert len(result.dangerous) == 3
    assert {tuple(c.reasons) for c in result.dangerous} == {('deviceName: "/dev/sdg" → "/dev/sdf"',)}
    assert (
        'DANGEROUS replace pgha-prod-patroni-1-data-attach (EBS volume attachment): deviceName: "/dev/sdg" → "/dev/sdf"'
    ) in render_text(result)


def test_set_diffs_the_patroni_path_that_no_committed_stack_selects() -> None:
    """Both committed stacks run RDS, so a change to the Patroni nodes is invisible to a plain diff;
    `--set engine=patroni` runs both versions with that override (as `pgha policy --set` does)."""
    base = base_commit({"components/patroni_cluster.py": ('device_name="/dev/sdf"', 'device_name="/dev/sdg"')})
    plain = pgha_diff("--stack", "prod", "--base", base, "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["changes"] == []
    result = pgha_diff("--stack", "prod", "--base", base, "--set", "engine=patroni", "--json")
    assert result.returncode == 3, result.stderr
    data = json.loads(result.stdout)
    assert data["overrides"] == {"engine": "patroni"}
    # the base ran with the override too: only the attachments differ, no RDS-to-Patroni swap
    assert sorted((c["name"], c["action"], c["dangerous"]) for c in data["changes"]) == [
        (f"pgha-prod-patroni-{n}-data-attach", "replace", True) for n in (1, 2, 3)
    ]
    comment = pgha_diff("--stack", "prod", "--base", base, "--set", "engine=patroni", "--markdown").stdout
    assert comment.startswith(f"### `pgha diff` — stack `prod` with `--set engine=patroni` vs `{base}`")
    assert "| **replace** | `pgha-prod-patroni-1-data-attach` | EBS volume attachment |" in comment


def test_set_takes_key_value_pairs() -> None:
    result = pgha_diff("--stack", "prod", "--base", "HEAD", "--set", "engine")
    assert result.returncode == 2 and "expected KEY=VALUE" in result.stderr


@pytest.mark.parametrize(("stack", "multi_az"), [("prod", "false"), ("dev", "true")])
def test_flipping_multi_az_modifies_the_primary_in_place(stack: str, multi_az: str) -> None:
    """availabilityZone is force-new and a Multi-AZ primary's AZ is RDS's: a flip must not replace the database."""
    before = snapshot.take(stack, None, "salt")
    after = snapshot.take(stack, {"multiAz": multi_az}, "salt")
    changes = {c.name: c for c in compare(before["resources"], after["resources"])}
    primary = changes[f"pgha-{stack}-primary"]
    assert (primary.action, list(primary.inputs), primary.reasons) == ("update", ["multiAz"], [])
    assert not [c for c in changes.values() if c.dangerous]


def test_a_new_single_az_primary_is_created_in_the_first_az_apart_from_its_replica() -> None:
    plan = run_program("dev")
    primary, replica = plan.get("pgha-dev-primary"), plan.get("pgha-dev-replica-1")
    assert primary.inputs["availabilityZone"] == "eu-west-1a" and replica.inputs["availabilityZone"] == "eu-west-1b"


def test_removing_the_first_allowed_cidr_deletes_only_its_rule() -> None:
    """Rules are named after their CIDR: the next CIDR's rule is not re-pointed (AWS refuses a duplicate rule)."""
    two = snapshot.take("dev", {"allowedCidrs": '["10.50.0.0/16", "10.60.0.0/16"]'}, "salt")
    one = snapshot.take("dev", {"allowedCidrs": '["10.60.0.0/16"]'}, "salt")
    changes = compare(two["resources"], one["resources"])
    assert [(c.name, c.action) for c in changes] == [("pgha-dev-net-db-from-10-50-0-0-16", "delete")]


def test_naming_rules_after_their_cidr_is_a_no_op_on_an_existing_stack() -> None:
    """The aliases (the former position names) keep today's rules: no delete and create on upgrade."""
    # the base names each rule by its position, as before
    by_position = (
        "cidr_rule_name(name, cidr),\n            security_group_id,",
        'f"{name}-from-cidr-{index}",\n            security_group_id,',
    )
    base = base_commit({"components/network.py": by_position})
    result = pgha_diff("--stack", "prod", "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["changes"] == []
