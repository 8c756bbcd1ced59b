"""JSON over HTTPS to a member's REST API (Patroni's, etcd's), with basic auth for unsafe calls.

Standard library only: the lab, the drills and the post-deploy hook in AWS Lambda share it.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.request
from typing import Any


def call_json(url: str, timeout: float = 2.0, method: str = "GET", body: dict | None = None,
              auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None) -> Any:
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
