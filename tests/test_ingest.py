"""boucle serve ingest: the ASGI app over real HTTP (uvicorn on loopback), to a file and to Kafka."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import httpx
import orjson
import pytest
import uvicorn
from typer.testing import CliRunner

from boucle.flows.cli.app import app as cli
from boucle.flows.ingest import FileForward, KafkaForward, create_app
from boucle.sinks.kafka import ensure_topics, producer_config

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def event(i: int, site: str = "store-0001", **fields) -> dict:
    return {"event_id": f"ing-{i}", "occurred_at": "2026-11-22T10:31:05Z", "site_id": site,
            "scores": {"nps": 3}, "attributes": {"waiting_time": 2}, **fields}


def ndjson(events: list[dict]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in events)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve():
    """Start the app on a free loopback port; yields its base URL."""
    servers = []

    def start(app) -> str:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)  # polling an event uvicorn exposes only as a flag
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


def lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def test_valid_events_are_accepted_and_appended_to_the_replay_file(settings, serve, tmp_path):
    out = tmp_path / "in.jsonl"
    url = serve(create_app(settings, FileForward(out), token=TOKEN))
    one = httpx.post(f"{url}/v1/feedback", content=orjson.dumps(event(1)), headers={
        **AUTH, "Content-Type": "application/json"})
    assert one.status_code == 202 and one.json() == {"accepted": 1, "rejected": 0}
    many = httpx.post(f"{url}/v1/feedback", content=ndjson([event(2), event(3, "store-0002")]), headers={
        **AUTH, "Content-Type": "application/x-ndjson"})
    assert many.status_code == 202 and many.json() == {"accepted": 2, "rejected": 0}
    assert [e["event_id"] for e in lines(out)] == ["ing-1", "ing-2", "ing-3"]


def test_a_mix_is_400_with_reasons_per_item_and_the_valid_ones_forwarded(settings, serve, tmp_path):
    out = tmp_path / "in.jsonl"
    url = serve(create_app(settings, FileForward(out), token=TOKEN))
    body = ndjson([event(1), event(2, "no-such-site")]) + b"{not json\n" + ndjson([
        event(4, occurred_at="2026-11-22T10:31:05"), event(5)])
    reply = httpx.post(f"{url}/v1/feedback", content=body, headers={**AUTH, "Content-Type": "application/x-ndjson"})
    assert reply.status_code == 400
    answer = reply.json()
    assert (answer["accepted"], answer["rejected"]) == (2, 3)
    assert [(e["index"], e["reason_code"]) for e in answer["errors"]] == [
        (1, "unknown_site"), (2, "invalid_json"), (3, "bad_timestamp")]
    assert all(e["reason"] for e in answer["errors"])
    assert [e["event_id"] for e in lines(out)] == ["ing-1", "ing-5"]


def test_a_bad_or_missing_token_is_401_and_nothing_is_forwarded(settings, serve, tmp_path):
    out = tmp_path / "in.jsonl"
    url = serve(create_app(settings, FileForward(out), token=TOKEN))
    body, json_type = orjson.dumps(event(1)), {"Content-Type": "application/json"}
    assert httpx.post(f"{url}/v1/feedback", content=body, headers=json_type).status_code == 401
    bad = httpx.post(f"{url}/v1/feedback", content=body, headers={**json_type, "Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert not out.exists()


def test_too_large_a_body_is_413_and_a_wrong_type_415(settings, serve, tmp_path):
    out = tmp_path / "in.jsonl"
    url = serve(create_app(settings, FileForward(out), token=TOKEN, max_body=1000))
    big = httpx.post(f"{url}/v1/feedback", content=ndjson([event(i) for i in range(20)]), headers={
        **AUTH, "Content-Type": "application/x-ndjson"})
    assert big.status_code == 413
    text = httpx.post(f"{url}/v1/feedback", content=b"x", headers={**AUTH, "Content-Type": "text/plain"})
    assert text.status_code == 415
    assert not out.exists()


def test_healthz_and_readyz(settings, serve, tmp_path):
    url = serve(create_app(settings, FileForward(tmp_path / "in.jsonl"), token=TOKEN))
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/readyz").json() == {"ready": True}
    gone = serve(create_app(settings, FileForward(tmp_path / "missing-dir" / "in.jsonl"), token=TOKEN))
    assert httpx.get(f"{gone}/healthz").status_code == 200
    assert httpx.get(f"{gone}/readyz").status_code == 503


def test_events_are_produced_to_kafka_keyed_by_site(settings, serve, kafka_broker):
    from kafka_broker import consume_all

    topic = f"ingest-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": kafka_broker.bootstrap}, {topic: 3})
    forward = KafkaForward(producer_config(kafka_broker.bootstrap), topic)
    url = serve(create_app(settings, forward, token=TOKEN))
    assert httpx.get(f"{url}/readyz", timeout=10).json() == {"ready": True}
    body = ndjson([event(1), event(2, "store-0002"), event(3, "nowhere"), event(4, "store-0001")])
    reply = httpx.post(f"{url}/v1/feedback", content=body, headers={**AUTH, "Content-Type": "application/x-ndjson"},
                       timeout=60)
    assert reply.status_code == 400 and reply.json()["accepted"] == 3
    got = sorted((m.key(), orjson.loads(m.value())["event_id"]) for m in consume_all(kafka_broker.bootstrap, topic))
    assert got == [(b"store-0001", "ing-1"), (b"store-0001", "ing-4"), (b"store-0002", "ing-2")]


def test_the_command_refuses_to_start_without_a_token(monkeypatch, tmp_path):
    monkeypatch.delenv("BOUCLE_INGEST_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["serve", "ingest", "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2 and "BOUCLE_INGEST_TOKEN" in result.output
    open_to_all = CliRunner().invoke(cli, ["serve", "ingest", "--no-auth", "--host", "0.0.0.0"])
    assert open_to_all.exit_code == 2 and "loopback" in open_to_all.output
