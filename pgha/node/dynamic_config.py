"""Patroni's dynamic configuration: bring a running cluster to what the template declares.

Patroni copies ``bootstrap.dcs`` into etcd once, when the cluster is created; after that the
settings live in etcd and only ``PATCH /config`` changes them. Without this, a changed ``ttl``,
``synchronous_mode`` or ``max_connections`` in the stack config (or in ``patroni/patroni.yml.j2``)
would render into every node's file and never reach the cluster. Keys the template does not
declare (``pause``, an operator's ``patronictl edit-config`` additions) are left alone.

Standard library only: the post-deploy hook runs it inside the VPC, in AWS Lambda.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any


class DynamicConfigError(RuntimeError):
    """No member's REST API accepted the change (names each member and why)."""


def config_patch(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The smallest ``PATCH /config`` body that makes ``current`` hold every value of ``wanted``.

    Nested sections (``postgresql.parameters``) are compared key by key, so one changed parameter
    sends that parameter only. Values compare as Patroni stores them: ``128MB`` and ``128MB``
    match, ``200`` and ``"200"`` do not, so a type change is sent too.
    """
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, dict) and isinstance(have, dict):
            nested = config_patch(have, value)
            if nested:
                patch[key] = nested
        elif have != value:
            patch[key] = value
    return patch


def changed_keys(patch: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names a patch sets (``ttl``, ``postgresql.parameters.wal_keep_size``): what to report."""
    names = []
    for key, value in patch.items():
        name = f"{prefix}{key}"
        names += changed_keys(value, f"{name}.") if isinstance(value, dict) and value else [name]
    return names


def _request(url: str, context: ssl.SSLContext, auth: tuple[str, str] | None = None,
             body: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, method="GET" if body is None else "PATCH",
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read().decode() or "{}")


def apply_dynamic_config(urls: Sequence[str], wanted: dict[str, Any], auth: tuple[str, str],
                         context: ssl.SSLContext, timeout: float = 10.0) -> dict[str, Any]:
    """Make the cluster's dynamic config hold ``wanted``; return what was changed ({} when nothing was).

    ``urls`` are the members' REST APIs (``https://host:8008``); the first that answers is used, as any
    member writes to the same etcd. Patroni applies the change on every member's next HA loop; a
    PostgreSQL parameter that needs a restart shows as ``pending_restart`` in ``patronictl list``.
    """
    problems = []
    for url in urls:
        base = url.rstrip("/")
        try:
            patch = config_patch(_request(f"{base}/config", context, timeout=timeout), wanted)
            if patch:
                _request(f"{base}/config", context, auth=auth, body=patch, timeout=timeout)
            return patch
        except urllib.error.HTTPError as err:
            problems.append(f"{base}: HTTP {err.code} {err.reason}")
        except (OSError, ValueError) as err:
            problems.append(f"{base}: {err}")
    raise DynamicConfigError("no Patroni REST API took the dynamic config: " + "; ".join(problems))
