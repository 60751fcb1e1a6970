"""A tiny local HTTP stand-in for a ClickHouse server that answers every request with one error.

A stand-in because no ClickHouse server can exist on the build machines (no Docker engine; the
only Debian package is clickhouse-server 18.16, far too old for this schema; no PyPI package
ships a server). It answers as ClickHouse does: the HTTP status, ``X-ClickHouse-Exception-Code``
and a ``Code: N. DB::Exception: ...`` body; it records what the client sent.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

__all__ = ["AUTH_FAILED", "OVERLOADED", "StandIn", "serving"]

AUTH_FAILED = (516, "Unknown", 516, b"Code: 516. DB::Exception: analyst: Authentication failed: password is"
               b" incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 26.9.1.1)\n")
OVERLOADED = (503, "Service Unavailable", 202,
              b"Code: 202. DB::Exception: Too many simultaneous queries. (TOO_MANY_SIMULTANEOUS_QUERIES)\n")


class StandIn(BaseHTTPRequestHandler):
    answer = AUTH_FAILED  # (HTTP status, reason, ClickHouse error code, body)
    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append({"path": self.path, "user": self.headers.get("X-ClickHouse-User"),
                                "auth": self.headers.get("Authorization")})
        status, reason, code, body = self.answer
        self.send_response(status, reason)
        self.send_header("X-ClickHouse-Exception-Code", str(code))
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@contextmanager
def serving(answer=AUTH_FAILED) -> Iterator[ThreadingHTTPServer]:
    """A stand-in on a free loopback port giving ``answer`` to every request, for the block."""
    StandIn.answer, StandIn.seen = answer, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        StandIn.answer = AUTH_FAILED
