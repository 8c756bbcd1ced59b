"""Patroni's dynamic config: what a running cluster must be sent to hold what the template declares."""

from __future__ import annotations

from pgha.lab.cluster import Lab
from pgha.node.dynamic_config import changed_keys, config_patch
from pgha.node.render import dynamic_config


def test_only_the_settings_that_differ_are_sent() -> None:
    current = {
        "ttl": 30,
        "loop_wait": 10,
        "postgresql": {"use_slots": True, "parameters": {"wal_keep_size": "1GB", "max_connections": 200}},
    }
    wanted = {
        "ttl": 20,
        "loop_wait": 10,
        "postgresql": {"use_slots": True, "parameters": {"wal_keep_size": "128MB", "max_connections": 200}},
    }
    patch = config_patch(current, wanted)
    assert patch == {"ttl": 20, "postgresql": {"parameters": {"wal_keep_size": "128MB"}}}
    assert changed_keys(patch) == ["ttl", "postgresql.parameters.wal_keep_size"]


def test_what_the_template_does_not_declare_is_left_alone() -> None:
    # `pause` (patronictl pause) and an operator's own parameter are not the stack's to undo
    current = {"ttl": 20, "pause": True, "postgresql": {"parameters": {"work_mem": "64MB"}}}
    assert config_patch(current, {"ttl": 20, "postgresql": {"parameters": {}}}) == {}


def test_a_section_or_setting_the_cluster_lacks_is_sent_whole() -> None:
    wanted = {"failsafe_mode": True, "postgresql": {"parameters": {"archive_timeout": 60}}}
    assert config_patch({}, wanted) == wanted
    # a value that changed type (an operator's "60" for 60) is sent as the template has it
    assert config_patch({"postgresql": {"parameters": {"archive_timeout": "60"}}}, wanted) == {
        "failsafe_mode": True,
        "postgresql": {"parameters": {"archive_timeout": 60}},
    }


def test_the_declared_config_is_the_templates_bootstrap_dcs_with_the_clusters_own_values(tmp_path) -> None:
    cluster = Lab(root=tmp_path, report=lambda _line: None).cluster()
    declared = dynamic_config(cluster)
    assert {k: declared[k] for k in ("ttl", "loop_wait", "retry_timeout")} == {
        "ttl": cluster.timing.ttl,
        "loop_wait": cluster.timing.loop_wait,
        "retry_timeout": cluster.timing.retry_timeout,
    }
    assert declared["synchronous_mode"] is cluster.synchronous_mode
    assert declared["postgresql"]["parameters"]["max_connections"] == cluster.max_connections
    # per-node settings (addresses, paths) are not cluster-wide: they stay in each node's file
    assert "listen" not in declared.get("postgresql", {})
