"""Patroni's dynamic configuration: bring a running cluster to what the template declares.

Patroni copies ``bootstrap.dcs`` into etcd once, when the cluster is created; after that the
settings live in etcd and only ``PATCH /config`` changes them. Without this, a changed ``ttl``,
``synchronous_mode`` or ``max_connections`` in the stack config (or in ``patroni/patroni.yml.j2``)
would render into every node's file and never reach the cluster. Keys the template does not
declare (``pause``, an operator's ``patronictl edit-config`` additions) are left alone.

Standard library only: the post-deploy hook runs it inside the VPC, in AWS Lambda.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from pgha.node.patroni_api import PatroniApi
from pgha.node.rest import NoMemberAnswered, first_answer


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


def apply_dynamic_config(
    urls: Sequence[str], wanted: dict[str, Any], auth: tuple[str, str], context: ssl.SSLContext, timeout: float = 10.0
) -> dict[str, Any]:
    """Make the cluster's dynamic config hold ``wanted``; return what was changed ({} when nothing was).

    ``urls`` are the members' REST APIs (``https://host:8008``); the first that answers is used, as any
    member writes to the same etcd. Patroni applies the change on every member's next HA loop; a
    PostgreSQL parameter that needs a restart shows as ``pending_restart`` in ``patronictl list``.
    """
    api = PatroniApi(urls, context=context, auth=auth, timeout=timeout)

    def reconcile(url: str) -> dict[str, Any]:
        patch = config_patch(api.config(url), wanted)
        if patch:
            api.patch_config(patch, url)
        return patch

    try:
        return first_answer(api.urls, reconcile)
    except NoMemberAnswered as err:
        raise DynamicConfigError(f"no Patroni REST API took the dynamic config: {err}") from None
