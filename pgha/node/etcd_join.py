"""How a node's etcd member starts: form the cluster, restart from its data, or join the running cluster.

etcd must be told. A member with an empty data directory that starts as "new" into a cluster that
already runs is refused ("member ... has already been bootstrapped", or a cluster ID mismatch) and
the node stays out of the DCS for good; one that lost its data must not simply start empty either
(raft's term and vote went with it): it is removed and added again. A member that is not in the
cluster yet (``nodes`` raised) must be added before it starts. So a node whose etcd directory is
empty first asks its peers:

- nobody answers: the cluster's first start; every member starts "new" from the same member list;
- its address is listed and it never started (no name yet): "new" while the cluster has no quorum
  (it is still forming), else "existing" (the others formed it without this node, or it was added);
- its address is listed under its name (it ran before and lost its data): remove that member, add it
  afresh, start "existing";
- its address is not listed: add it, start "existing".

Changing the membership needs quorum: without it the join stops with :class:`EtcdJoinError`.
Standard library only, over etcd's v3 JSON gateway with the node's client certificate.
"""

from __future__ import annotations

import base64
import ssl
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgha.node.render import ClusterSpec, NodeSpec, etcd_peer_url
from pgha.node.rest import call_json

#: How long one peer may take to answer before the next is asked (a peer not booted yet does not answer).
PEER_TIMEOUT_S = 3.0


class EtcdJoinError(RuntimeError):
    """The member cannot join: the running cluster has no quorum to change its membership, or refused it."""


@dataclass(frozen=True)
class EtcdStart:
    """How etcd starts: ``state`` "new" or "existing", and the members it is told about (name, peer URL)."""

    state: str
    initial_cluster: tuple[tuple[str, str], ...]
    #: What the join did to the cluster's membership, for the bootstrap's report ("" when nothing).
    changed: str = ""


def configured_start(cluster: ClusterSpec, state: str) -> EtcdStart:
    """Start with the members the cluster declares: a first start ("new") or a restart from data ("existing")."""
    return EtcdStart(state, tuple((n.name, etcd_peer_url(cluster, n)) for n in cluster.nodes))


def plan_start(cluster: ClusterSpec, node: NodeSpec, has_data: bool, context: ssl.SSLContext,
               call: Callable[..., Any] = call_json) -> EtcdStart:
    """How this node's etcd member starts (module docstring); may remove and add the member in the cluster."""
    if has_data:
        return configured_start(cluster, "existing")
    answer = _member_list(cluster, node, context, call)
    if answer is None:
        return configured_start(cluster, "new")
    client_url, members = answer
    mine = etcd_peer_url(cluster, node)
    listed = next((m for m in members if mine in m.get("peerURLs", [])), None)
    quorum = _has_quorum(client_url, context, call)
    if listed is not None and not listed.get("name"):
        if not quorum:
            return configured_start(cluster, "new")
        return EtcdStart("existing", _initial_cluster(cluster, members))
    if not quorum:
        why = "lost its data" if listed is not None else "is not a member yet"
        raise EtcdJoinError(f"etcd member {node.name} {why}, and the cluster at {client_url} has no quorum to "
                            "change its membership: bring the other members back first (docs/patroni.md)")
    changed = ""
    if listed is not None:
        _change(call, f"{client_url}/v3/cluster/member/remove", {"ID": listed["ID"]}, context)
        changed = f"removed member {listed['ID']} ({node.name}, which lost its data), "
    added = _change(call, f"{client_url}/v3/cluster/member/add", {"peerURLs": [mine]}, context)
    return EtcdStart("existing", _initial_cluster(cluster, added.get("members", [])),
                     changed + f"added {node.name} at {mine}")


def _initial_cluster(cluster: ClusterSpec, members: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The running cluster's members as ``initial-cluster`` lists them (etcd checks they match its own);
    a member that has not started yet (this node, just added) has no name: the declared one at its address."""
    declared = {url: name for name, url in configured_start(cluster, "new").initial_cluster}
    return tuple(
        (member.get("name") or declared.get(member["peerURLs"][0], f"member-{member['ID']}"), member["peerURLs"][0])
        for member in members
    )


def _member_list(cluster: ClusterSpec, node: NodeSpec, context: ssl.SSLContext,
                 call: Callable[..., Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The first peer that answers, and the members it knows (etcd 3.4 answers from its own state, quorum
    or not); None when no peer answers."""
    for peer in cluster.nodes:
        if peer.name == node.name:
            continue
        client_url = f"https://{peer.address}:{cluster.ports.etcd_client}"
        try:
            answer = call(f"{client_url}/v3/cluster/member/list", method="POST", body={}, context=context,
                          timeout=PEER_TIMEOUT_S)
        except (OSError, ValueError):
            continue
        if isinstance(answer, dict):
            return client_url, list(answer.get("members", []))
    return None


def _has_quorum(client_url: str, context: ssl.SSLContext, call: Callable[..., Any]) -> bool:
    """True when a linearizable read succeeds: only a cluster with a leader and quorum serves one."""
    probe = base64.b64encode(b"pgha/etcd-join-probe").decode()
    try:
        answer = call(f"{client_url}/v3/kv/range", method="POST", body={"key": probe}, context=context,
                      timeout=PEER_TIMEOUT_S)
    except (OSError, ValueError):
        return False
    return isinstance(answer, dict) and "header" in answer


def _change(call: Callable[..., Any], url: str, body: dict[str, Any], context: ssl.SSLContext) -> dict[str, Any]:
    """A membership change; EtcdJoinError naming etcd's answer when it refuses."""
    try:
        answer = call(url, method="POST", body=body, context=context, timeout=10.0)
    except urllib.error.HTTPError as err:
        raise EtcdJoinError(f"etcd refused {url.rsplit('/', 1)[-1]} of {body}: HTTP {err.code} "
                            f"{err.read().decode(errors='replace')[:300]}") from None
    except (OSError, ValueError) as err:
        raise EtcdJoinError(f"etcd {url.rsplit('/', 1)[-1]} of {body} failed: {err}") from None
    return answer if isinstance(answer, dict) else {}
