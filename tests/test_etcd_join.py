"""How a node with an empty etcd directory starts: the cluster's states played by a stand-in, then real etcd.

The stand-in answers as etcd 3.4 does and records every call: on its peer port (``GET /members``) every
running member shows the membership it holds, quorum or not (``null`` while it still replays its log);
its client API answers nothing until the member has had quorum. The tests at the end run three real
etcd 3.4 members on 127.0.9.1-3, booted the way `pgha node bootstrap` boots them, for the states that
hang on etcd's own behaviour. The common case (a member that lost its data rejoins a running cluster)
also runs against the lab's etcd in tests/test_lab.py.
"""

from __future__ import annotations

import io
import shutil
import ssl
import tempfile
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pgha.lab.cluster import Lab, removed_on_exit
from pgha.local import SERVICE_USER, port_in_use
from pgha.node import etcd_join
from pgha.node.bootstrap import BootstrapError, NodeTls, write_node_files
from pgha.node.config import AwsAccess, NodeConfig
from pgha.node.etcd_join import EtcdJoinError, plan_start
from pgha.node.render import ClusterSecrets, ClusterSpec, render_etcd

CLUSTER: ClusterSpec = Lab(addresses=("10.0.0.1", "10.0.0.2", "10.0.0.3")).cluster()
NODE3 = CLUSTER.nodes[2]
PEER = "https://10.0.0.{}:2380"


def member(number: int, started: bool = True, member_id: str | None = None) -> dict[str, Any]:
    """A member as etcd's client API lists it. One of the initial members has its name from the start;
    its client URLs only once it started (published them through raft, which needs quorum)."""
    return {
        "ID": member_id or str(number),
        "peerURLs": [PEER.format(number)],
        "name": f"node{number}",
        **({"clientURLs": [f"https://10.0.0.{number}:2379"]} if started else {}),
    }


class FakeEtcd:
    """etcd 3.4 on 10.0.0.1 (nothing runs on 10.0.0.2); records what it was asked.

    ``members`` None: no etcd runs. ``serving``: its client API answers (it has had quorum since it
    started; default ``quorum``); ``quorum``: a linearizable read succeeds; ``loading``: how many times its
    peer port answers ``null`` first (a member replaying its log)."""

    def __init__(
        self,
        members: list[dict[str, Any]] | None,
        quorum: bool = True,
        serving: bool | None = None,
        refuse_add: bool = False,
        loading: int = 0,
    ):
        self.members, self.quorum, self.refuse_add, self.loading = members, quorum, refuse_add, loading
        self.serving = quorum if serving is None else serving
        self.calls: list[tuple[str, dict | None]] = []

    def __call__(self, url: str, method: str, context: ssl.SSLContext, timeout: float, body: dict | None = None) -> Any:
        parts = urlsplit(url)
        path = parts.path if parts.port == 2379 else f"peer{parts.path}"
        self.calls.append((path, body))
        if self.members is None or parts.hostname == "10.0.0.2":
            raise urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
        if path == "peer/members":
            if self.loading:
                self.loading -= 1
                return None
            return [{"id": int(m["ID"]), **{k: v for k, v in m.items() if k != "ID"}} for m in self.members]
        if not self.serving:
            raise TimeoutError("timed out")  # etcd 3.4 serves no client before it has had quorum
        if path == "/v3/cluster/member/list":
            return {"header": {}, "members": self.members}
        if path == "/v3/kv/range":
            if not self.quorum:
                raise TimeoutError("timed out")  # a linearizable read waits for a leader that never comes
            return {"header": {"revision": "7"}}
        if path == "/v3/cluster/member/remove":
            self.members = [m for m in self.members if m["ID"] != body["ID"]]
            return {"header": {}, "members": self.members}
        if path == "/v3/cluster/member/add":
            if self.refuse_add:
                raise urllib.error.HTTPError(
                    url,
                    400,
                    "Bad Request",
                    {},  # type: ignore[arg-type]
                    io.BytesIO(b'{"error":"etcdserver: unhealthy cluster","code":14}'),
                )
            self.members = [*self.members, {"ID": "99", "peerURLs": body["peerURLs"]}]
            return {"header": {}, "members": self.members}
        raise AssertionError(f"unexpected call {path}")

    def changes(self) -> list[tuple[str, dict | None]]:
        """The membership changes asked for."""
        return [(path, body) for path, body in self.calls if path.endswith(("/add", "/remove"))]


@pytest.fixture(autouse=True)
def no_pause(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stand-in needs no pause before a peer is asked again."""
    if "real_lab" not in request.fixturenames:
        monkeypatch.setattr(etcd_join, "RECHECK_S", 0.0)


def start(etcd: FakeEtcd, has_data: bool = False):
    return plan_start(CLUSTER, NODE3, has_data, ssl.create_default_context(), call=etcd)


def test_a_member_with_data_restarts_without_asking_anyone() -> None:
    etcd = FakeEtcd([member(1), member(2), member(3)])
    assert start(etcd, has_data=True).state == "existing" and etcd.calls == []


def test_no_peer_running_is_the_clusters_first_start() -> None:
    result = start(FakeEtcd(None))
    assert result.state == "new"
    assert [url for _, url in result.initial_cluster] == [PEER.format(n) for n in (1, 2, 3)]


def test_a_cluster_still_forming_is_joined_as_new() -> None:
    """EC2 boots the nodes in parallel: node1's etcd runs and waits for a quorum; nobody has client URLs."""
    etcd = FakeEtcd([member(1, started=False), member(2, started=False), member(3, started=False)], quorum=False)
    assert start(etcd).state == "new" and etcd.changes() == []
    # both peers asked twice (10.0.0.2 refuses), no client call
    assert [path for path, _ in etcd.calls] == ["peer/members"] * 4


def test_a_listed_member_that_never_started_joins_the_formed_cluster_as_existing() -> None:
    """The others formed the cluster without it (it is listed by name, but without client URLs): nothing to
    change. The old test of "never started" (no name) took it for a member that lost its data."""
    etcd = FakeEtcd([member(2), member(1), member(3, started=False)])
    result = start(etcd)
    assert (result.state, etcd.changes()) == ("existing", [])
    assert result.initial_cluster == (("node2", PEER.format(2)), ("node1", PEER.format(1)), ("node3", PEER.format(3)))


def test_a_member_that_never_started_starts_as_an_initial_member_while_the_cluster_has_no_quorum() -> None:
    """It lost nothing; etcd 3.4 refuses "existing" without quorum, and checks itself that it never started."""
    etcd = FakeEtcd([member(1), member(2), member(3, started=False)], quorum=False)
    assert (start(etcd).state, etcd.changes()) == ("new", [])


def test_a_member_that_lost_its_data_is_removed_then_added() -> None:
    etcd = FakeEtcd([member(1), member(2), member(3, member_id="333")])
    result = start(etcd)
    assert etcd.changes() == [
        ("/v3/cluster/member/remove", {"ID": "333"}),
        ("/v3/cluster/member/add", {"peerURLs": [PEER.format(3)]}),
    ]
    assert result.state == "existing" and ("node3", PEER.format(3)) in result.initial_cluster
    assert "removed member 333" in result.changed
    etcd_yml = render_etcd(CLUSTER, NODE3, result.state, result.initial_cluster)
    assert f"initial-cluster: node1={PEER.format(1)},node2={PEER.format(2)},node3={PEER.format(3)}\n" in etcd_yml


def test_a_new_member_is_added_and_told_only_the_members_that_exist() -> None:
    """nodes raised from 3 to 5, one at a time: node3 of a cluster that has node1 and node2 only."""
    etcd = FakeEtcd([member(1), member(2)])
    result = start(etcd)
    assert etcd.changes() == [("/v3/cluster/member/add", {"peerURLs": [PEER.format(3)]})]
    assert [name for name, _ in result.initial_cluster] == ["node1", "node2", "node3"]


@pytest.mark.parametrize("serving", [False, True], ids=["restarted-alone", "lost-quorum-since"])
@pytest.mark.parametrize(
    "members", [[member(1), member(2), member(3)], [member(1), member(2)]], ids=["lost-its-data", "not-a-member-yet"]
)
def test_without_quorum_the_membership_is_left_alone_and_the_error_says_why(members, serving) -> None:
    """The formed cluster's record says it formed; no member answers with quorum: stop, change nothing (the
    join used to take a member that does not answer clients for "no etcd runs" and start "new")."""
    etcd = FakeEtcd(members, quorum=False, serving=serving)
    with pytest.raises(
        EtcdJoinError,
        match=r"^no quorum: etcd member node3 (lost its data|is not a member yet), "
        r"the cluster has formed \(as https://10.0.0.1:2380 records\)",
    ):
        start(etcd)
    assert etcd.changes() == []


def test_a_member_still_reading_its_data_is_asked_again() -> None:
    """A member restarting from its data shows no membership (``null``) until it has replayed its log: that
    is not taken for a first start."""
    etcd = FakeEtcd([member(1), member(2), member(3)], quorum=False, loading=2)
    with pytest.raises(EtcdJoinError, match=r"^no quorum: etcd member node3 lost its data"):
        start(etcd)
    assert [path for path, _ in etcd.calls][:3] == ["peer/members"] * 3


def test_a_member_that_never_shows_its_membership_stops_the_join(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(etcd_join, "PEER_READY_S", 0.0)
    etcd = FakeEtcd([member(1), member(2), member(3)], loading=1000)
    with pytest.raises(EtcdJoinError, match=r"etcd at https://10.0.0.1:2380 runs but shows no membership"):
        start(etcd)
    assert etcd.changes() == []


def test_a_refused_add_is_named() -> None:
    with pytest.raises(EtcdJoinError, match=r"etcd refused add of .*HTTP 400 .*unhealthy cluster"):
        start(FakeEtcd([member(1), member(2)], refuse_add=True))


# --- against real etcd 3.4: three members on 127.0.9.1-3, booted as `pgha node bootstrap` boots them -----------

REAL_ADDRESSES = ("127.0.9.1", "127.0.9.2", "127.0.9.3")


@pytest.fixture
def real_lab() -> Iterator[Lab]:
    """A lab directory with the lab's CA and certificates on 127.0.9.1-3 (clear of a running lab's 127.0.1.x)
    and no process yet; every etcd a test starts in it is stopped, and the directory removed, afterwards."""
    if not shutil.which("etcd"):
        pytest.skip("etcd not installed (apt-get install etcd-server)")
    root = Path(tempfile.mkdtemp(prefix="pgha-etcd-join-"))
    root.chmod(0o755)  # etcd runs as the service user when the tests run as root
    try:
        with removed_on_exit(Lab(root=root, report=lambda _line: None, addresses=REAL_ADDRESSES)) as lab:
            lab._write_tls_files()
            yield lab
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bootstrap_etcd(lab: Lab, name: str) -> tuple[str, str]:
    """What `pgha node bootstrap` does before etcd starts on node ``name`` (decide how it starts, maybe change
    the membership, write etcd.yml); returns the start state and the membership report ("" when none)."""
    cluster = lab.cluster()
    node = next(n for n in cluster.nodes if n.name == name)
    material = lab.tls_material()
    config = NodeConfig(
        cluster=cluster,
        node=node,
        service_manager="external",
        service_user=SERVICE_USER,
        aws=AwsAccess(region="us-east-1", secret_arn="unused", tls_secret_arn="unused"),
    )
    reported: list[str] = []
    write_node_files(
        config,
        ClusterSecrets("su", "repl", "rewind", "api"),
        NodeTls(material["ca"]["cert"], material[name]["cert"], material[name]["key"]),
        reported.append,
    )
    state = yaml.safe_load((lab.node_dir(name) / "etcd.yml").read_text())["initial-cluster-state"]
    return state, "".join(reported)


def start_etcd(lab: Lab, name: str) -> None:
    """Start the node's etcd from the etcd.yml its bootstrap wrote; wait until its peer port listens."""
    lab._start(name, "etcd", [shutil.which("etcd") or "etcd", "--config-file", str(lab.node_dir(name) / "etcd.yml")])
    address = lab.addresses[int(name[-1]) - 1]
    lab._wait(f"{name}'s etcd peer port", lambda: port_in_use(address, lab.ports.etcd_peer), 30, ())


def member_ids(lab: Lab) -> dict[str, str]:
    """name -> member ID, once every member is healthy."""
    lab._wait("etcd cluster healthy", lab.etcd_healthy, 60, ())
    return {m["name"]: m["ID"] for m in lab.etcd_members()}


def test_real_a_member_that_lost_its_data_while_another_is_down_is_refused_and_nothing_changes(real_lab) -> None:
    """etcd 3.4 answers no client request until it has quorum: a member restarted alone does not answer, which
    the join took for "nobody runs, a first start" and planned "new" for a member that lost its data."""
    for name in ("node1", "node2", "node3"):  # bootstrapped before any etcd runs, as `pgha lab up` does
        assert bootstrap_etcd(real_lab, name) == ("new", "")
    for name in ("node1", "node2", "node3"):
        start_etcd(real_lab, name)
    before = member_ids(real_lab)
    for name in ("node1", "node2", "node3"):
        real_lab.kill_etcd(name)
    shutil.rmtree(real_lab.node_dir("node3") / "etcd")  # node3's data volume is lost
    start_etcd(real_lab, "node1")  # from its data, alone: no quorum
    written = (real_lab.node_dir("node3") / "etcd.yml").read_text()
    with pytest.raises(BootstrapError, match=r"^no quorum: etcd member node3 lost its data"):
        bootstrap_etcd(real_lab, "node3")
    assert (real_lab.node_dir("node3") / "etcd.yml").read_text() == written
    start_etcd(real_lab, "node2")  # quorum again: node3 is replaced
    state, changed = bootstrap_etcd(real_lab, "node3")
    assert state == "existing" and f"removed member {before['node3']} (node3, which lost its data)" in changed
    start_etcd(real_lab, "node3")
    after = member_ids(real_lab)
    assert after["node3"] != before["node3"] and {k: after[k] for k in ("node1", "node2")} == {
        k: before[k] for k in ("node1", "node2")
    }


def test_real_first_formation_then_a_member_that_never_started(real_lab) -> None:
    """The nodes boot in parallel: node2's bootstrap finds node1's etcd up and waiting for a quorum (a first
    formation: "new"); node3 boots after the others formed the cluster. etcd lists it by name (initial members
    have one) but without client URLs: it never started, so it joins as it is, no member removed or added."""
    assert bootstrap_etcd(real_lab, "node1") == ("new", "")
    start_etcd(real_lab, "node1")
    assert bootstrap_etcd(real_lab, "node2") == ("new", "")
    start_etcd(real_lab, "node2")
    real_lab._wait("node1 and node2 formed", lambda: len(real_lab.etcd_members()) == 3, 30, ())
    formed = {m["name"]: m["ID"] for m in real_lab.etcd_members()}
    assert bootstrap_etcd(real_lab, "node3") == ("existing", "")
    start_etcd(real_lab, "node3")
    assert member_ids(real_lab) == formed


def test_real_a_member_that_never_started_restores_quorum_without_membership_change(real_lab) -> None:
    """node1 and node2 formed the cluster, then both stopped; node1 came back alone (no quorum, no answer to
    clients). node3 never ran, so it lost nothing: it starts as one of the members that formed the cluster
    ("new": etcd 3.4 refuses "existing" while the cluster has no quorum, its version "not_decided") and, with
    node1, the cluster has quorum again."""
    for name in ("node1", "node2"):
        assert bootstrap_etcd(real_lab, name) == ("new", "")
        start_etcd(real_lab, name)
    real_lab._wait("node1 and node2 formed", lambda: len(real_lab.etcd_members()) == 3, 30, ())
    formed = {m["name"]: m["ID"] for m in real_lab.etcd_members()}
    for name in ("node1", "node2"):
        real_lab.kill_etcd(name)
    start_etcd(real_lab, "node1")
    assert bootstrap_etcd(real_lab, "node3") == ("new", "")
    start_etcd(real_lab, "node3")
    real_lab._wait("node1 and node3 have quorum", lambda: len(real_lab.etcd_members()) == 3, 30, ())
    start_etcd(real_lab, "node2")
    assert member_ids(real_lab) == formed
