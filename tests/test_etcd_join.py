"""How a node with an empty etcd directory starts, for the cluster states the lab cannot safely produce.

The common case (a member that lost its data rejoins a running cluster) runs against the lab's real etcd in
tests/test_lab.py, and every `lab up` from scratch takes the "nobody answers" path. The other states (a
cluster still forming on EC2's parallel boots, one without quorum, a member being added) are played here by a
stand-in for etcd's v3 JSON gateway that answers like etcd 3.4 and records every call.
"""

from __future__ import annotations

import io
import ssl
import urllib.error
from typing import Any

import pytest

from pgha.lab.cluster import Lab
from pgha.node.etcd_join import EtcdJoinError, plan_start
from pgha.node.render import ClusterSpec, render_etcd

CLUSTER: ClusterSpec = Lab(addresses=("10.0.0.1", "10.0.0.2", "10.0.0.3")).cluster()
NODE3 = CLUSTER.nodes[2]
PEER = "https://10.0.0.{}:2380"


def member(number: int, started: bool = True, member_id: str | None = None) -> dict[str, Any]:
    """A member as etcd's member/list shows it: one that never started has no name yet."""
    return {"ID": member_id or str(number), "peerURLs": [PEER.format(number)],
            **({"name": f"node{number}"} if started else {})}


class FakeEtcd:
    """Answers as etcd 3.4's gateway on 10.0.0.1 (10.0.0.2 does not answer); records what it was asked."""

    def __init__(self, members: list[dict[str, Any]] | None, quorum: bool = True, refuse_add: bool = False):
        self.members, self.quorum, self.refuse_add = members, quorum, refuse_add
        self.calls: list[tuple[str, dict]] = []

    def __call__(self, url: str, method: str, body: dict, context: ssl.SSLContext, timeout: float) -> Any:
        path = url.split(":2379", 1)[1]
        self.calls.append((path, body))
        if self.members is None or "10.0.0.2" in url:
            raise urllib.error.URLError("connection refused")
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
                raise urllib.error.HTTPError(url, 400, "Bad Request", {},  # type: ignore[arg-type]
                                             io.BytesIO(b'{"error":"etcdserver: unhealthy cluster","code":14}'))
            self.members = [*self.members, {"ID": "99", "peerURLs": body["peerURLs"]}]
            return {"header": {}, "members": self.members}
        raise AssertionError(f"unexpected call {path}")

    def changes(self) -> list[tuple[str, dict]]:
        """The membership changes asked for."""
        return [(path, body) for path, body in self.calls if path.endswith(("/add", "/remove"))]


def start(etcd: FakeEtcd, has_data: bool = False):
    return plan_start(CLUSTER, NODE3, has_data, ssl.create_default_context(), call=etcd)


def test_a_member_with_data_restarts_without_asking_anyone() -> None:
    etcd = FakeEtcd([member(1), member(2), member(3)])
    assert start(etcd, has_data=True).state == "existing" and etcd.calls == []


def test_nobody_answering_is_the_clusters_first_start() -> None:
    result = start(FakeEtcd(None))
    assert result.state == "new"
    assert [url for _, url in result.initial_cluster] == [PEER.format(n) for n in (1, 2, 3)]


def test_a_cluster_still_forming_is_joined_as_new() -> None:
    """EC2 boots the nodes in parallel: node1's etcd answers before the cluster has a leader."""
    etcd = FakeEtcd([member(1), member(2, started=False), member(3, started=False)], quorum=False)
    assert start(etcd).state == "new" and etcd.changes() == []


def test_a_listed_member_that_never_started_joins_the_formed_cluster_as_existing() -> None:
    """The others formed the cluster without it (or it was added by an earlier try): nothing to change."""
    etcd = FakeEtcd([member(2), member(1), member(3, started=False)])
    result = start(etcd)
    assert (result.state, etcd.changes()) == ("existing", [])
    assert result.initial_cluster == (("node2", PEER.format(2)), ("node1", PEER.format(1)), ("node3", PEER.format(3)))


def test_a_member_that_lost_its_data_is_removed_then_added() -> None:
    etcd = FakeEtcd([member(1), member(2), member(3, member_id="333")])
    result = start(etcd)
    assert etcd.changes() == [("/v3/cluster/member/remove", {"ID": "333"}),
                              ("/v3/cluster/member/add", {"peerURLs": [PEER.format(3)]})]
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


@pytest.mark.parametrize("members", [[member(1), member(2), member(3)], [member(1), member(2)]])
def test_without_quorum_the_membership_is_left_alone_and_the_error_says_why(members) -> None:
    etcd = FakeEtcd(members, quorum=False)
    with pytest.raises(EtcdJoinError, match=r"node3 (lost its data|is not a member yet), and the cluster at "
                                            r"https://10.0.0.1:2379 has no quorum"):
        start(etcd)
    assert etcd.changes() == []


def test_a_refused_add_is_named() -> None:
    with pytest.raises(EtcdJoinError, match=r"etcd refused add of .*HTTP 400 .*unhealthy cluster"):
        start(FakeEtcd([member(1), member(2)], refuse_add=True))
