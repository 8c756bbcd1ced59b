"""JSON over HTTPS to a member's REST API (Patroni's, etcd's), with basic auth for unsafe calls.

Standard library only: the lab, the drills and the post-deploy hook in AWS Lambda share it.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def call_json(
    url: str,
    timeout: float = 2.0,
    method: str = "GET",
    body: dict | None = None,
    auth: tuple[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Any:
    """Send ``body`` (if any) as JSON and return the decoded JSON answer, or its text when it is not JSON.

    HTTP errors raise ``urllib.error.HTTPError`` (with the status), network errors ``OSError``.
    """
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        text = response.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


class NoMemberAnswered(RuntimeError):
    """No member's API answered; ``problems`` says, for each, why (``https://host:port: HTTP 503 ...``)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems) or "no member to ask")


def first_answer(urls: Sequence[str], call: Callable[[str], T]) -> T:
    """``call(url)`` for each member's base URL in turn; the first result that comes without an error.

    Any member of a Patroni or etcd cluster answers for the whole cluster, so a caller needs only one
    that is up. An HTTP error, a network error or a malformed answer (``ValueError``) moves on to the
    next member; when none answers, :class:`NoMemberAnswered` names each member and its error.
    """
    problems = []
    for url in urls:
        base = url.rstrip("/")
        try:
            return call(base)
        except urllib.error.HTTPError as err:
            problems.append(f"{base}: HTTP {err.code} {err.reason}")
        except (OSError, ValueError) as err:
            problems.append(f"{base}: {err}")
    raise NoMemberAnswered(problems)
