"""The lab's AWS: moto's server (Secrets Manager, S3) over TLS on loopback, closing TLS cleanly.

``python -m pgha.lab.aws_server HOST PORT CERT KEY``. moto's own ``moto.server`` (werkzeug) ends
every response with ``Connection: close`` and closes the socket without a TLS close_notify;
pgBackRest (OpenSSL 3) then fails with "unexpected eof while reading". This server sizes every
response and sends close_notify before closing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any


def sized(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """WSGI middleware: buffer the body and set Content-Length when the app did not."""

    def wrapper(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Callable[[bytes], None]:
            captured.update(status=status, headers=headers, exc_info=exc_info)
            return lambda _data: None

        result = app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close:
                close()
        headers = captured["headers"]
        if not any(name.lower() == "content-length" for name, _ in headers):
            no_body = environ.get("REQUEST_METHOD") == "HEAD" or captured["status"][:3] in ("204", "304")
            headers = [*headers, ("Content-Length", "0" if no_body else str(len(body)))]
        start_response(captured["status"], headers, captured["exc_info"])
        return [body]

    return wrapper


def main(argv: list[str]) -> None:
    """Serve moto on HOST:PORT with the given certificate and key until SIGTERM."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    class CleanClose(MotoRequestHandler):
        def finish(self) -> None:
            super().finish()
            unwrap = getattr(self.request, "unwrap", None)
            if unwrap:  # send close_notify (and wait briefly for the client's) before the socket closes
                self.request.settimeout(5)
                with contextlib.suppress(OSError, ValueError):
                    unwrap()

    host, port, cert, key = argv
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run_simple(
        host,
        int(port),
        sized(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        ssl_context=(cert, key),
        request_handler=CleanClose,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
