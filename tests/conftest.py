"""Shared fixtures: the shipped configuration, loaded once."""

import pytest

from boucle.config.loader import SHIPPED_CONFIG, load_settings


@pytest.fixture(scope="session")
def settings():
    return load_settings(SHIPPED_CONFIG)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """Point every output of the default config into a temporary directory."""
    from boucle.sinks.clickhouse.client import close_all

    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", str(tmp_path / "chdb"))
    monkeypatch.setenv("BOUCLE_OUTPUTS__ALERTS_JSONL", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL", str(tmp_path / "dead.jsonl"))
    yield tmp_path
    close_all()


# ---- Kafka (issue #3): a real Kafka-protocol broker for the whole session ----
@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A running broker (Tansu on a free port, or ``$BOUCLE_TEST_KAFKA``); yields its bootstrap."""
    from kafka_broker import start_broker

    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()
