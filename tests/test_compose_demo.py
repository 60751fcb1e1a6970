"""The docker-compose demo's own commands, run without Docker against the test broker (issue #13).

The engine and the simulator get the command lines of docker-compose.yml (only the broker address
and the state directory are pointed at the test's); the environment shrinks the simulation so the
demo's 50 events/s take seconds. The engine follows Kafka live (wall clock on) while the simulator
sends events dated from the fixed demo start: they must be processed as history and fill the windows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from kafka_broker import consume_all
from test_kafka_flow import REPO, boucle, boucle_env, new_topics

from boucle.config.loader import load_settings

DAYS, VOLUME = "2", "0.25"  # 1,202 events: 24 s at the demo's 50 events/s


def _command(service: dict, bootstrap: str, state: Path) -> list[str]:
    """A compose service's command with the broker and the engine's volume pointed at the test's."""
    return [bootstrap if arg == "kafka:9092" else arg.replace("/var/lib/boucle", str(state))
            for arg in service["command"]]


def _wait_for(predicate, process: subprocess.Popen, deadline_s: float, what: str):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the engine died: {process.stdout.read()[-3000:] if process.stdout else ''}"
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} after {deadline_s}s")


@pytest.mark.slow
def test_the_compose_demo_fills_the_windows(kafka_broker, tmp_path, monkeypatch):
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    topics = new_topics(kafka_broker, partitions=6)
    env = boucle_env(tmp_path, kafka_broker.bootstrap, topics,
                     BOUCLE_SIMULATION__DAYS=DAYS, BOUCLE_SIMULATION__VOLUME_SCALE=VOLUME)
    engine_args = _command(services["engine"], kafka_broker.bootstrap, tmp_path)
    simulator_args = _command(services["simulator"], kafka_broker.bootstrap, tmp_path)
    assert engine_args[:3] == ["run", "--source", "kafka"] and "--to-end" not in engine_args

    engine = subprocess.Popen([sys.executable, "-m", "boucle.flows.cli.app", *engine_args], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        boucle(*simulator_args, env=env, timeout=120)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        from boucle.sources.simulator import Simulator

        settings = load_settings()
        simulator = Simulator(settings)
        malformed = sum(1 for label in simulator.labels() if label["type"] == "malformed")
        # The engine has read the whole topic once every malformed event is on the dead-letter topic.
        _wait_for(lambda: len(consume_all(kafka_broker.bootstrap, topics["dlq"], timeout_s=2)) >= malformed,
                  engine, 120, "the engine did not dead-letter every malformed event")
        engine.send_signal(signal.SIGINT)  # the engine follows forever: stop it, as `docker compose stop` would
        engine.communicate(timeout=60)
    finally:
        if engine.poll() is None:
            engine.kill()

    def query(sql: str) -> dict:
        return orjson.loads(boucle("query", sql, "--format", "json", env=env).stdout)

    windows = query("SELECT count() AS rows, uniqExact(site_id) AS sites, sum(n) AS n FROM attribute_scores"
                    " WHERE attribute = 'nps' AND window_length = 3600")
    stored = query("SELECT count() AS n, sum(late) AS late FROM feedback")
    assert windows["rows"] > 0 and windows["sites"] >= len(settings.sites) // 2
    # Windows closed while the engine followed the topic (rows of the last ~2 h wait for more events).
    assert windows["n"] >= stored["n"] // 2
    assert stored["n"] > 0 and stored["late"] / stored["n"] < 0.02
