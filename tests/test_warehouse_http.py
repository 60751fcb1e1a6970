"""Server mode over HTTP, against a tiny local stand-in for ClickHouse.

A stand-in because no ClickHouse server can exist on the build machines (no Docker engine; the
only Debian package is clickhouse-server 18.16, far too old for this schema; no PyPI package
ships a server). The stand-in answers like a ClickHouse server that rejects the credentials
(HTTP 516, ``X-ClickHouse-Exception-Code: 516``, ``AUTHENTICATION_FAILED``) or that is
overloaded (HTTP 503), and records what the client sent. The chDB tests exercise the same SQL.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.sinks.clickhouse.client import WarehouseError, close_all, connect


class StandIn(BaseHTTPRequestHandler):
    status = 516
    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        type(self).seen.append({"path": self.path, "user": self.headers.get("X-ClickHouse-User"),
                                "auth": self.headers.get("Authorization")})
        if self.status == 516:
            body = (b"Code: 516. DB::Exception: analyst: Authentication failed: password is incorrect, or there"
                    b" is no user with such name. (AUTHENTICATION_FAILED) (version 26.9.1.1)\n")
            self.send_response(516, "Unknown")
            self.send_header("X-ClickHouse-Exception-Code", "516")
        else:
            body = b"Code: 202. DB::Exception: Too many simultaneous queries. (TOO_MANY_SIMULTANEOUS_QUERIES)\n"
            self.send_response(503, "Service Unavailable")
            self.send_header("X-ClickHouse-Exception-Code", "202")
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stand_in():
    StandIn.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    StandIn.status = 516
    close_all()


def test_wrong_credentials_from_the_environment_fail_at_once_with_a_clear_error(stand_in, monkeypatch):
    url = f"http://127.0.0.1:{stand_in.server_address[1]}"
    monkeypatch.setenv("BOUCLE_WAREHOUSE__URL", url)
    monkeypatch.setenv("BOUCLE_WAREHOUSE__USER", "analyst")
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PASSWORD", "hunter2")
    warehouse = load_settings(SHIPPED_CONFIG).warehouse
    assert (warehouse.url, warehouse.user) == (url, "analyst")
    with pytest.raises(WarehouseError) as info:
        connect(warehouse, max_retry_seconds=30)
    message = str(info.value)
    assert message == (f"ClickHouse server at {url} rejected user 'analyst': wrong user or password"
                       " (BOUCLE_WAREHOUSE__USER / BOUCLE_WAREHOUSE__PASSWORD)")
    assert "hunter2" not in message
    assert len(StandIn.seen) == 1  # not retried: wrong credentials do not get better
    sent = StandIn.seen[0]
    assert sent["user"] == "analyst" or (sent["auth"] or "").startswith("Basic ")


def test_an_overloaded_server_is_retried_with_backoff_then_reported(stand_in):
    from boucle.config.settings import Warehouse

    StandIn.status = 503
    url = f"http://127.0.0.1:{stand_in.server_address[1]}"
    with pytest.raises(WarehouseError) as info:
        connect(Warehouse(url=url, password="s3cret"), max_retry_seconds=1.0)
    message = str(info.value)
    assert message.startswith(f"ClickHouse server at {url} is unreachable") and "gave up after" in message
    assert len(StandIn.seen) >= 3 and "s3cret" not in message
