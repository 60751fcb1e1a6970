"""Server mode over HTTP, against a tiny local stand-in for ClickHouse.

A stand-in (tests/clickhouse_stand_in.py says why) that answers like a ClickHouse server that rejects the credentials
(HTTP 516, ``X-ClickHouse-Exception-Code: 516``, ``AUTHENTICATION_FAILED``) or that is
overloaded (HTTP 503), and records what the client sent. The chDB tests exercise the same SQL.
"""

from __future__ import annotations

import pytest
from clickhouse_stand_in import AUTH_FAILED, OVERLOADED, StandIn, serving

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.sinks.clickhouse.client import WarehouseError, close_all, connect


@pytest.fixture
def stand_in():
    with serving(AUTH_FAILED) as server:
        yield server
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

    StandIn.answer = OVERLOADED
    url = f"http://127.0.0.1:{stand_in.server_address[1]}"
    with pytest.raises(WarehouseError) as info:
        connect(Warehouse(url=url, password="s3cret"), max_retry_seconds=1.0)
    message = str(info.value)
    assert message.startswith(f"ClickHouse server at {url} is unreachable") and "gave up after" in message
    assert len(StandIn.seen) >= 3 and "s3cret" not in message
