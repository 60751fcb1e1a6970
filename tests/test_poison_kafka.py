"""Poison messages in a real topic with `--recovery-dir`: the engine dead-letters them and goes on,
after a SIGKILL mid-stream and a restart with the same directory too (no crash loop), and every good
event arrives.

Two kinds of poison, spread through the stream so that some are re-read after the restart:
- inputs that crashed the engine before issue #13 (a detractor whose ``customer.id`` is a list, JSON
  nested 1,100 levels, a consenting customer's e-mail nested 300 levels, an ``occurred_at`` of
  2149-06-07): the decoder now refuses them;
- responses the decoder accepts but the hot-alert step fails on. No input is known to make a step
  fail any more (decoding types every field), so the failure is *injected*: the engine runs with
  ``boucle.operators.guard.inject_fault`` set for those events (a public test hook, set by the
  wrapper below before the CLI starts), which is what a step's bug on one event would do.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import orjson
from bytewax.testing import TestingSink, run_main
from kafka_broker import consume_all
from test_kafka_flow import REPO, boucle, boucle_env, new_topics
from test_kafka_recovery import _query, kill_mid_stream

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.sinks.kafka import producer_config
from boucle.sources.message import RawMessage
from boucle.sources.simulator import Simulator, SimulatorSource

DAYS = 3
RATE = 600  # messages/s while the first run is alive, so the kill lands mid-stream
EVERY = 250  # a poison message after every EVERY good ones

ENGINE = """
import sys
from boucle.operators import guard
guard.inject_fault("hot", lambda event: event.event_id.startswith("poison-guard"))
from boucle.flows.cli.app import app
sys.argv[0] = "boucle"
app()
"""


def _poison(i: int, good: RawMessage) -> RawMessage:
    """The ``i``-th poison message, modelled on the good message before it (same site and time)."""
    event = orjson.loads(good.value)
    event.update({"event_id": f"poison-{i}", "scores": {"nps": 0}})
    event["customer"] = {"id": f"poison-c{i}", "consent_contact": True, "email": "x@example.org"}
    kind = i % 5
    if kind == 0:
        value = orjson.dumps({**event, "event_id": f"poison-guard-{i}"})  # accepted; the hot step fails on it
    elif kind == 1:
        value = orjson.dumps({**event, "customer": {"id": ["a", "list"], "consent_contact": True}})
    elif kind == 2:
        value = orjson.dumps({**event, "comment": "D"}).replace(b'"D"', b"[" * 1100 + b"]" * 1100)
    elif kind == 3:
        value = orjson.dumps({**event, "customer": {"id": "c", "consent_contact": True, "email": "E"}}).replace(
            b'"E"', b"[" * 300 + b'"x@example.org"' + b"]" * 300)
    else:
        value = orjson.dumps({**event, "occurred_at": "2149-06-07T00:00:00Z"})
    return RawMessage(value, "poison", 0, i, good.key, good.received_ms)


def test_poison_messages_are_dead_lettered_across_a_kill_and_a_restart(kafka_broker, settings, tmp_path):
    simulator = Simulator(settings, days=DAYS, seed=5)
    good = list(simulator.messages())
    malformed = sum(1 for label in simulator.labels() if label["type"] == "malformed")
    stream, poison = [], []
    for n, message in enumerate(good):
        stream.append(message)
        if n % EVERY == EVERY - 1:
            poison.append(_poison(len(poison), message))
            stream.append(poison[-1])
    guarded = [p for p in poison if b'"poison-guard-' in p.value]
    assert len(poison) >= 10 and guarded

    reference: list[dict] = []  # the good messages alone, in-process, no crash
    run_main(build_flow(settings, SimulatorSource(simulator), FlowOutputs(alerts=[TestingSink(reference)])))
    reference_hot = {a["alert_id"] for a in reference if a["kind"] == "hot"}

    topics = new_topics(kafka_broker)
    env = boucle_env(tmp_path, kafka_broker.bootstrap, topics)
    run_args = [sys.executable, "-c", ENGINE, "run", "--source", "kafka", "--no-progress",
                "--recovery-dir", str(tmp_path / "recovery"), "--event-time", "--epoch-interval", "0.5"]
    first = subprocess.Popen(run_args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    config = producer_config([kafka_broker.bootstrap], None, **{"linger.ms": "5"})
    # The first run dead-letters a guarded poison message and is still alive after it.
    _, killed_at = kill_mid_stream(
        first, stream, config, topics, kafka_broker.bootstrap,
        also=lambda: _wait_for_dead(kafka_broker.bootstrap, topics["dlq"], b'"poison-guard-', first), rate=RATE,
    )
    assert first.returncode == -signal.SIGKILL
    assert killed_at < len(stream), "the kill should land while messages are still arriving"

    # The restart re-reads what came after the last snapshot, poison included, and goes to the end.
    boucle_wrapped = subprocess.run([*run_args, "--to-end"], env=env, cwd=REPO, capture_output=True, text=True,
                                    timeout=180)
    assert boucle_wrapped.returncode == 0, boucle_wrapped.stderr[-3000:]

    [row] = _query(
        "SELECT (SELECT count() FROM feedback FINAL) AS feedback,"
        " (SELECT countIf(event_id LIKE 'poison-guard-%') FROM feedback FINAL) AS guarded_stored,"
        " (SELECT count() FROM dead_letters FINAL) AS dead_letters,"
        " (SELECT countIf(reason_code = 'internal_error') FROM dead_letters FINAL) AS internal_errors,"
        " (SELECT countIf(reason LIKE 'internal_error: hot: InjectedFault%') FROM dead_letters FINAL) AS in_hot,"
        " (SELECT countIf(reason_code IN ('bad_type', 'too_deep', 'time_out_of_range')) FROM dead_letters FINAL)"
        " AS refused",
        env,
    )
    assert row == {
        "feedback": len(good) - malformed + len(guarded),  # every good event, and the guarded ones (stored)
        "guarded_stored": len(guarded),
        "dead_letters": malformed + len(poison),  # each poison message once, re-read or not
        "internal_errors": len(guarded), "in_hot": len(guarded), "refused": len(poison) - len(guarded),
    }
    published = {orjson.loads(m.value())["alert_id"] for m in consume_all(kafka_broker.bootstrap, topics["alerts"])
                 if orjson.loads(m.value())["kind"] == "hot"}
    assert published == reference_hot  # no alert lost to a poison message, none from one
    boucle("db", "migrate", env=env)  # the warehouse is still usable


def _wait_for_dead(bootstrap: str, topic: str, needle: bytes, process: subprocess.Popen, deadline_s: float = 90):
    import time

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the engine died: {process.stderr.read()[-2000:] if process.stderr else ''}"
        if any(needle in (m.value() or b"") for m in consume_all(bootstrap, topic)):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no dead letter with {needle!r} on {topic} after {deadline_s}s")
