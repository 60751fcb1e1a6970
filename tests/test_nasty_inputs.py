"""The nasty-input corpus (tests/nasty_corpus.py, 200+ classes) through the real flow: a JSONL file
replayed as `boucle replay` does (file source, the loop, embedded chDB), each poison line between
two good responses.

What must hold: the flow ends normally; every line is accepted or dead-lettered, with a known
reason (in == accepted + dead-lettered, line by line); the good responses around every poison line
are stored, not late; every alert the run publishes serialises, within the size bound.
"""

from __future__ import annotations

import orjson
import pytest
from bytewax.testing import TestingSink
from nasty_corpus import SITE, corpus, event

from boucle.config.times import iso_ms
from boucle.flows.feedback_flow import FlowOutputs
from boucle.flows.loop import LoopSources
from boucle.flows.run import RunOptions, run_flow
from boucle.operators.alerts import alert_json
from boucle.operators.decode import REASON_CODES, Decoder, Feedback
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sources.file_source import JsonlFileSource
from boucle.sources.message import RawMessage

pytestmark = pytest.mark.slow
START_MS = 1_790_848_800_000  # 2026-10-01T10:00:00Z
CLASSES = list(corpus(START_MS))
KAFKA_MESSAGE_LIMIT = 1_000_000  # librdkafka's default message.max.bytes


def test_the_corpus_has_at_least_a_hundred_named_classes():
    names = [name for name, _, _ in CLASSES]
    assert len(names) >= 100 and len(set(names)) == len(names)
    assert all(b"\n" not in line and b"\r" not in line for _, line, _ in CLASSES)


@pytest.mark.parametrize(("name", "line", "expected"), CLASSES, ids=[c[0] for c in CLASSES])
def test_the_decoder_gives_each_class_its_verdict(settings, name, line, expected):
    result = Decoder(settings).decode(RawMessage(line, "corpus", 0, 0))
    verdict = "accepted" if isinstance(result, Feedback) else result.reason_code
    assert verdict == "accepted" or verdict in REASON_CODES
    if expected is not None:
        assert verdict == expected, getattr(result, "reason", "")


@pytest.fixture(scope="module")
def replayed(settings, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nasty")
    lines, good = [], {}
    for i, (name, line, _) in enumerate(CLASSES):
        for side, delta in (("before", 0), ("after", 2)):
            eid = f"good-{i:03d}-{side}"
            good[eid] = name
            if side == "after":
                lines.append(line)
            lines.append(orjson.dumps(event(eid, iso_ms(START_MS + (3 * i + delta) * 1000))))
    path = tmp / "nasty.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    warehouse = settings.warehouse.model_copy(update={"path": str(tmp / "chdb"), "url": None, "database": "nasty"})
    # Every nasty line is one site's response on one day: uncapped, each hot alert is published whole.
    hot = settings.hot_alerts.model_copy(update={"rate_cap": settings.hot_alerts.rate_cap.model_copy(
        update={"per_site_per_day": 0})})
    settings = settings.model_copy(update={"warehouse": warehouse, "hot_alerts": hot})
    alerts, dead = [], []
    outputs = FlowOutputs(warehouse=ClickHouseSink(warehouse), alerts=[TestingSink(alerts)],
                          dead_letters=[TestingSink(dead)])
    stats = run_flow(settings, JsonlFileSource(path, batch_size=50), RunOptions(progress=False), outputs=outputs,
                     loop=LoopSources())  # as `boucle replay` runs it
    client = connect(warehouse)
    feedback = client.query("SELECT event_id, origin, late, site_id FROM nasty.feedback FINAL").result_rows
    dead_rows = client.query("SELECT origin, partition, offset, reason_code, reason FROM nasty.dead_letters FINAL"
                             ).result_rows
    yield {"lines": lines, "good": good, "stats": stats, "alerts": alerts, "dead": dead, "feedback": feedback,
           "dead_rows": dead_rows, "path": str(path)}
    close_all()


def test_every_line_is_accepted_or_dead_lettered_with_a_reason(replayed):
    lines, stats = replayed["lines"], replayed["stats"]
    assert stats.read == len(lines)
    accepted = {int(origin.rsplit(":", 1)[1]) for _, origin, _, _ in replayed["feedback"]}
    dead = [offset for origin, _, offset, _, _ in replayed["dead_rows"] if origin == replayed["path"]]
    assert len(dead) == len(set(dead)), "two dead letters of the file share a key"
    assert accepted.isdisjoint(dead)
    assert accepted | set(dead) == set(range(len(lines)))  # in == accepted + dead-lettered, line by line
    assert stats.accepted + stats.rejected == len(lines)
    assert all(code in REASON_CODES and reason for _, _, _, code, reason in replayed["dead_rows"])
    assert not [r for r in replayed["dead_rows"] if r[3] == "internal_error"], "a step failed on an event"


def test_good_events_around_each_poison_line_are_stored_and_not_late(replayed):
    stored = {event_id: late for event_id, _, late, site in replayed["feedback"] if site == SITE}
    missing = sorted(replayed["good"][e] for e in replayed["good"] if e not in stored)
    late = sorted(replayed["good"][e] for e in replayed["good"] if stored.get(e))
    assert not missing, f"good events lost around {missing[:5]}"
    assert not late, f"good events made late around {late[:5]}"


def test_every_alert_serialises_within_the_size_bound(replayed, settings):
    alerts = replayed["alerts"]
    assert alerts
    sizes = [len(alert_json(a)) for a in alerts]
    assert max(sizes) < KAFKA_MESSAGE_LIMIT
    limit = settings.hot_alerts.max_comment_chars
    long = [a for a in alerts if a.get("response", {}).get("comment", "").startswith("Nul. Nul.")]
    assert long and all(a["response"]["comment"].endswith(" [truncated, 200,000 chars]") for a in long)
    assert all(len(a["response"]["comment"]) < limit + 40 for a in alerts if "response" in a)
