"""docker-compose.yml (for users; no Docker here): every service present and wired together."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from boucle.config.loader import load_settings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_services_and_images(compose):
    services = compose["services"]
    assert set(services) >= {"kafka", "clickhouse", "engine", "simulator", "grafana"}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["grafana"]["image"].startswith("grafana/grafana")
    for name in ("engine", "simulator"):
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file()


def test_kafka_runs_kraft_with_an_internal_listener_on_9092(compose):
    env = _env(compose["services"]["kafka"])
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "CLUSTER_ID" in env and env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    listeners = dict(item.split("://") for item in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners and env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert set(listeners) <= set(protocols) and advertised["PLAINTEXT"] == "kafka:9092"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert "healthcheck" in compose["services"]["kafka"]


def test_engine_reads_kafka_and_writes_to_the_clickhouse_server(compose):
    services = compose["services"]
    engine = services["engine"]
    command = engine["command"]
    assert command[:3] == ["run", "--source", "kafka"] and command[command.index("--brokers") + 1] == "kafka:9092"
    assert "--recovery-dir" in command and "--to-end" not in command
    env = _env(engine)
    clickhouse = _env(services["clickhouse"])
    assert env["BOUCLE_WAREHOUSE__URL"] == "http://clickhouse:8123"
    assert env["BOUCLE_WAREHOUSE__USER"] == clickhouse["CLICKHOUSE_USER"]
    assert env["BOUCLE_WAREHOUSE__PASSWORD"] == clickhouse["CLICKHOUSE_PASSWORD"]
    assert env["BOUCLE_WAREHOUSE__DATABASE"] == clickhouse["CLICKHOUSE_DB"]
    assert engine["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert engine["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    # The environment must be valid settings for the engine.
    import os

    saved = dict(os.environ)
    try:
        os.environ.update(env)
        settings = load_settings(REPO / "config" / "boucle.toml")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert settings.warehouse.url == "http://clickhouse:8123" and settings.kafka.brokers == "kafka:9092"


def test_simulator_feeds_the_feedback_topic(compose):
    simulator = compose["services"]["simulator"]
    command = simulator["command"]
    assert command[0] == "simulate" and command[command.index("--brokers") + 1] == "kafka:9092"
    assert command[command.index("--rate") + 1] == "50"
    assert simulator["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_grafana_has_the_clickhouse_datasource_provisioned(compose):
    grafana = compose["services"]["grafana"]
    assert "grafana-clickhouse-datasource" in _env(grafana)["GF_INSTALL_PLUGINS"]
    mount = next(v for v in grafana["volumes"] if v.split(":")[1] == "/etc/grafana/provisioning")
    provisioning = (REPO / mount.split(":")[0]).resolve()
    [source] = yaml.safe_load((provisioning / "datasources" / "clickhouse.yml").read_text())["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert source["jsonData"]["host"] == "clickhouse" and source["jsonData"]["protocol"] == "http"
    assert source["jsonData"]["port"] == 8123 and source["jsonData"]["defaultDatabase"] == "boucle"
    # ${VAR} in provisioning files expands from Grafana's environment.
    env = _env(grafana)
    assert source["jsonData"]["username"] == "${CLICKHOUSE_USER}" and "CLICKHOUSE_USER" in env
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}" and "CLICKHOUSE_PASSWORD" in env


def test_grafana_loads_the_dashboard_on_the_provisioned_data_source(compose):
    import json

    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"] if v.startswith("./")}
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/boucle.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert (REPO / mounts[dashboards_dir] / "boucle.json").is_file()
    source = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/clickhouse.yml").read_text())
    uid = source["datasources"][0]["uid"]
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/boucle.json").read_text())

    def uids(node):
        if isinstance(node, dict):
            if isinstance(node.get("datasource"), dict):
                yield node["datasource"].get("uid")
            for value in node.values():
                yield from uids(value)
        elif isinstance(node, list):
            for value in node:
                yield from uids(value)

    used = set(uids(dashboard)) - {None}
    assert used and used <= {uid, "${datasource}", "$datasource"}
