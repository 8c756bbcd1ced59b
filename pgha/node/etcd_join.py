"""How a node's etcd member starts: form the cluster, restart from its data, or join the running cluster.

etcd must be told. A member with an empty data directory that starts as "new" into a cluster that
already runs is refused ("member ... has already been bootstrapped", or a cluster ID mismatch) and
the node stays out of the DCS for good; one that lost its data must not simply start empty either
(raft's term, vote and log went with it): it is removed and added again. A member that is not in the
cluster yet (``nodes`` raised) must be added before it starts.

What tells a first formation from a formed cluster is the peers' own record of it: each etcd serves the
membership it holds on its peer port (``GET /members``, what etcd itself reads there before it starts),
quorum or not, while etcd 3.4 answers no client request until it has quorum (a member restarted alone
does not answer at all). A member gets its client URLs in that record only once it published them
through raft, i.e. once the cluster had a quorum: so a listed member with client URLs means the cluster
has formed, and that record lives in the peers' data directories. A node whose etcd directory is empty
first asks its peers:

- no peer's etcd runs: the cluster's first start, "new" (every member from the same declared list);
- peers run, but no member has client URLs: the cluster is still forming (they wait for quorum), "new";
- the cluster has formed and lists this node's address without client URLs: it never started (the others
  formed the cluster without it, or it was added) and lost nothing: "existing" with the cluster's members
  when one answers with quorum, else "new" as an initial member (etcd 3.4 refuses "existing" without
  quorum, and refuses by itself a "new" member that has started before); no membership change;
- the cluster has formed and lists it with client URLs (it ran and lost its data): remove that member,
  add it afresh, start "existing";
- the cluster has formed and does not list it: add it, start "existing".

Changing the membership needs quorum: without it the join stops with :class:`EtcdJoinError` ("no
quorum: ...") and changes nothing. Its limit: when no other member's etcd runs at all, a node that lost
its data cannot tell that from the first start (docs/patroni.md, "Replacing a node").
Standard library only, over etcd's peer port and v3 JSON gateway with the node's client certificate.
"""

from __future__ import annotations

import base64
import ssl
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pgha.node.render import ClusterSpec, NodeSpec, etcd_peer_url
from pgha.node.rest import call_json

#: How long one peer may take to answer before the next is asked (a peer not booted yet does not answer).
PEER_TIMEOUT_S = 3.0
#: How long a peer that runs but has not loaded its membership yet (replaying its log) is waited for.
PEER_READY_S = 30.0
#: The pause before a peer is asked again (a record still loading, or one that shows no formed cluster).
RECHECK_S = 1.0
#: How long a membership change etcd refuses as "unhealthy cluster" (members connected < 5 s) is retried.
RECONFIG_WAIT_S = 20.0


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


def plan_start(
    cluster: ClusterSpec, node: NodeSpec, has_data: bool, context: ssl.SSLContext, call: Callable[..., Any] = call_json
) -> EtcdStart:
    """How this node's etcd member starts (module docstring); may remove and add the member in the cluster.

    "new" only on a first formation (no peer runs, or none lists a started member); EtcdJoinError, with
    nothing changed, when the membership must change and no member answers with quorum."""
    if has_data:
        return configured_start(cluster, "existing")
    mine = etcd_peer_url(cluster, node)
    known = _peer_members(cluster, node, context, call)
    if known is None:
        return configured_start(cluster, "new")
    peer_url, members = known
    listed = next((m for m in members if mine in m.get("peerURLs", [])), None)
    if not any(m.get("clientURLs") for m in members):
        if listed is None:
            raise EtcdJoinError(
                f"etcd at {peer_url} is forming a cluster without {node.name} ({mine}): "
                "its members do not match this node's; nothing was changed"
            )
        return configured_start(cluster, "new")
    answer = _member_list(cluster, node, context, call)
    quorum = answer is not None and _has_quorum(answer[0], context, call)
    if listed is not None and not listed.get("clientURLs"):
        # it never started, so it lost nothing: into the running cluster as it stands, or, while that has no
        # quorum (etcd 3.4 refuses "existing" then), as one of the members that first formed it
        return (
            EtcdStart("existing", _initial_cluster(cluster, answer[1]))
            if answer and quorum
            else configured_start(cluster, "new")
        )
    why = "lost its data" if listed is not None else "is not a member yet"
    if answer is None or not quorum:
        raise EtcdJoinError(
            f"no quorum: etcd member {node.name} {why}, the cluster has formed (as {peer_url} "
            f"records), and no member answers with quorum to change its membership: bring the "
            "other members back first; nothing was changed (docs/patroni.md)"
        )
    client_url, members = answer
    listed = next((m for m in members if mine in m.get("peerURLs", [])), None)
    changed = ""
    if listed is not None:
        _change(call, f"{client_url}/v3/cluster/member/remove", {"ID": listed["ID"]}, context)
        changed = f"removed member {listed['ID']} ({node.name}, which lost its data), "
    added = _change(call, f"{client_url}/v3/cluster/member/add", {"peerURLs": [mine]}, context)
    return EtcdStart(
        "existing", _initial_cluster(cluster, added.get("members", [])), changed + f"added {node.name} at {mine}"
    )


def _initial_cluster(cluster: ClusterSpec, members: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """The running cluster's members as ``initial-cluster`` lists them (etcd checks they match its own);
    a member that has not started yet (this node, just added) has no name: the declared one at its address.
    ``members`` as the client API lists them ("ID") or the peer port does ("id")."""
    declared = {url: name for name, url in configured_start(cluster, "new").initial_cluster}
    return tuple(
        (
            member.get("name") or declared.get(member["peerURLs"][0], f"member-{member.get('ID', member.get('id'))}"),
            member["peerURLs"][0],
        )
        for member in members
    )


def _peer_members(
    cluster: ClusterSpec, node: NodeSpec, context: ssl.SSLContext, call: Callable[..., Any]
) -> tuple[str, list[dict[str, Any]]] | None:
    """The membership the peers' etcd record, from their peer ports (served with or without quorum): the
    first record that shows the cluster formed (a member with client URLs), else the first answer; None
    when no peer's etcd runs.

    A member restarting from its data answers ``null`` until it has replayed its log: it is asked again
    (EtcdJoinError after :data:`PEER_READY_S`). An answer that shows no formed cluster is asked for once
    more, :data:`RECHECK_S` later, so a record caught halfway through its replay is not taken for a first
    formation."""
    deadline = time.monotonic() + PEER_READY_S
    rechecked = False
    while True:
        first: tuple[str, list[dict[str, Any]]] | None = None
        loading = []
        for peer in cluster.nodes:
            if peer.name == node.name:
                continue
            peer_url = etcd_peer_url(cluster, peer)
            try:
                answer = call(f"{peer_url}/members", method="GET", context=context, timeout=PEER_TIMEOUT_S)
            except (OSError, ValueError):
                continue  # not running (yet), or not reachable
            members = [m for m in answer if isinstance(m, dict)] if isinstance(answer, list) else []
            if not members:
                loading.append(peer_url)
            elif any(m.get("clientURLs") for m in members):
                return peer_url, members
            else:
                first = first or (peer_url, members)
        if not loading and (first is None or rechecked):
            return first
        if time.monotonic() > deadline:
            raise EtcdJoinError(
                f"etcd at {', '.join(loading)} runs but shows no membership after {PEER_READY_S:.0f} "
                "s (still reading its data?): try again; nothing was changed"
            )
        rechecked = not loading
        time.sleep(RECHECK_S)


def _member_list(
    cluster: ClusterSpec, node: NodeSpec, context: ssl.SSLContext, call: Callable[..., Any]
) -> tuple[str, list[dict[str, Any]]] | None:
    """The first peer whose client API answers, and the members it lists; None when none answers (etcd 3.4
    serves clients only once it has had quorum since it started)."""
    for peer in cluster.nodes:
        if peer.name == node.name:
            continue
        client_url = f"https://{peer.address}:{cluster.ports.etcd_client}"
        try:
            answer = call(
                f"{client_url}/v3/cluster/member/list", method="POST", body={}, context=context, timeout=PEER_TIMEOUT_S
            )
        except (OSError, ValueError):
            continue
        if isinstance(answer, dict):
            return client_url, list(answer.get("members", []))
    return None


def _has_quorum(client_url: str, context: ssl.SSLContext, call: Callable[..., Any]) -> bool:
    """True when a linearizable read succeeds: only a cluster with a leader and quorum serves one."""
    probe = base64.b64encode(b"pgha/etcd-join-probe").decode()
    try:
        answer = call(
            f"{client_url}/v3/kv/range", method="POST", body={"key": probe}, context=context, timeout=PEER_TIMEOUT_S
        )
    except (OSError, ValueError):
        return False
    return isinstance(answer, dict) and "header" in answer


def _change(call: Callable[..., Any], url: str, body: dict[str, Any], context: ssl.SSLContext) -> dict[str, Any]:
    """A membership change; EtcdJoinError naming etcd's answer when it refuses.

    etcd refuses a change while the members have not all been connected for 5 s ("unhealthy cluster", HTTP
    503), as just after the member that brought quorum back started: that refusal is retried for
    :data:`RECONFIG_WAIT_S`."""
    deadline = time.monotonic() + RECONFIG_WAIT_S
    while True:
        try:
            answer = call(url, method="POST", body=body, context=context, timeout=10.0)
        except urllib.error.HTTPError as err:
            if err.code == 503 and time.monotonic() < deadline:
                time.sleep(RECHECK_S)
                continue
            raise EtcdJoinError(
                f"etcd refused {url.rsplit('/', 1)[-1]} of {body}: HTTP {err.code} "
                f"{err.read().decode(errors='replace')[:300]}"
            ) from None
        except (OSError, ValueError) as err:
            raise EtcdJoinError(f"etcd {url.rsplit('/', 1)[-1]} of {body} failed: {err}") from None
        return answer if isinstance(answer, dict) else {}
