"""Patroni's REST API as one client: the member that answers, the cluster view, the dynamic config, switchover.

Standard library only (on :mod:`pgha.node.rest`): the lab, the drills and the post-deploy hook in AWS
Lambda share it, so the hook bundle carries it.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgha.node.rest import call_json, first_answer


@dataclass(frozen=True)
class Member:
    """One member as Patroni reports it in ``GET /cluster``."""

    name: str
    host: str
    port: int
    role: str
    state: str
    timeline: int | None
    lag: int | str | None


class PatroniApi:
    """The members' REST APIs (``https://host:8008``): any member answers for the cluster, so each call goes to
    the first that answers (:func:`pgha.node.rest.first_answer`, whose ``NoMemberAnswered`` names each and why)."""

    def __init__(
        self,
        urls: Sequence[str],
        context: ssl.SSLContext | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float = 2.0,
    ):
        self.urls = [url.rstrip("/") for url in urls]
        self.context, self.auth, self.timeout = context, auth, timeout

    def _call(self, path: str, url: str | None, **request: Any) -> Any:
        """``path`` on ``url`` (one member: its errors raise as they come), else on the first member that answers."""

        def call(base: str) -> Any:
            return call_json(f"{base.rstrip('/')}{path}", timeout=self.timeout, context=self.context, **request)

        return call(url) if url else first_answer(self.urls, call)

    def get(self, path: str, url: str | None = None) -> Any:
        """GET ``path`` from ``url`` (one member), else from the first member that answers."""
        return self._call(path, url)

    def members(self) -> list[Member]:
        """The cluster's members (``GET /cluster``), sorted by name."""
        data = self.get("/cluster")
        if not isinstance(data, dict):
            raise ValueError(f"GET /cluster answered {str(data)[:80]!r}, not a JSON object")
        return [
            Member(
                name=m["name"],
                host=m["host"],
                port=m["port"],
                role=m["role"],
                state=m["state"],
                timeline=m.get("timeline"),
                lag=m.get("lag"),
            )
            for m in sorted(data.get("members", []), key=lambda m: m["name"])
        ]

    def config(self, url: str | None = None) -> dict[str, Any]:
        """The dynamic configuration Patroni keeps in the DCS (``GET /config``)."""
        current = self.get("/config", url)
        if not isinstance(current, dict):
            raise ValueError(f"GET /config answered {str(current)[:80]!r}, not a JSON object")
        return current

    def patch_config(self, patch: dict[str, Any], url: str | None = None) -> Any:
        """``PATCH /config`` with ``patch`` (needs ``auth``): Patroni merges it into the dynamic configuration."""
        return self._call("/config", url, method="PATCH", body=patch, auth=self.auth)

    def switchover(self, leader_url: str, leader: str, candidate: str | None = None, timeout: float = 30.0) -> Any:
        """``POST /switchover`` to the leader (needs ``auth``); ``urllib.error.HTTPError`` when Patroni refuses it
        (its body says why, e.g. a candidate that is not the synchronous standby)."""
        body = {"leader": leader, **({"candidate": candidate} if candidate else {})}
        return call_json(
            f"{leader_url.rstrip('/')}/switchover",
            method="POST",
            body=body,
            auth=self.auth,
            timeout=timeout,
            context=self.context,
        )
