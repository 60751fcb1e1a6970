"""Duplicates by event_id resolved one way everywhere: the first version wins (issue #13).

On real chDB: the stored feedback row, the windows, the hot alert and the dead letter all agree;
an at-least-once re-delivery after a restart with recovery is not a duplicate.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from boucle.config.times import iso_ms
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.run import prepare_recovery_dir
from boucle.flows.stats import RunStats
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.query import optimize_final
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sources.message import RawMessage

BASE = int(datetime(2026, 10, 1, 9, tzinfo=timezone.utc).timestamp() * 1000)
SITE = "store-0001"


def message(offset: int, event_id: str, nps: int, minute: int, comment: str = "") -> RawMessage:
    event = {"event_id": event_id, "occurred_at": iso_ms(BASE + minute * 60_000), "site_id": SITE,
             "scores": {"nps": nps}, "attributes": {"waiting_time": 3}, "comment": comment}
    return RawMessage(orjson.dumps(event), "feedback", 0, offset, SITE.encode())


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory):
    yield str(tmp_path_factory.mktemp("chdb") / "warehouse")
    close_all()


def _settings(settings, chdb_path, database):
    warehouse = settings.warehouse.model_copy(update={"path": chdb_path, "url": None, "database": database})
    return settings.model_copy(update={"warehouse": warehouse})


def _run(settings, items, recovery=None, epoch=timedelta(0), stats=None):
    alerts, dead = [], []
    outputs = FlowOutputs(warehouse=ClickHouseSink(settings.warehouse), alerts=[TestingSink(alerts)],
                          dead_letters=[TestingSink(dead)])
    outputs.prepare()
    flow = build_flow(settings, TestingSource(items), outputs, stats)
    run_main(flow, epoch_interval=epoch, recovery_config=recovery)
    return alerts, dead


def _query(settings, sql):
    client = connect(settings.warehouse)
    return client.query(sql.format(db=settings.warehouse.database)).result_rows


def test_first_version_wins_everywhere_and_the_other_is_dead_lettered(settings, chdb_path):
    settings = _settings(settings, chdb_path, "dup_first")
    first = message(0, "dup-1", 2, 5, "first version")
    again = message(3, "dup-1", 10, 5, "second version")  # same id and time, new content
    items = [first, message(1, "e-2", 9, 6), message(2, "e-3", 8, 7), again, message(4, "e-4", 9, 8)]
    stats = RunStats()
    alerts, dead = _run(settings, items, stats=stats)
    optimize_final(connect(settings.warehouse), settings.warehouse.database)
    assert (stats.read, stats.accepted, stats.rejected) == (5, 4, 1)
    assert stats.rejected_by_reason == {"duplicate_event": 1}

    [(nps, comment)] = _query(settings, "SELECT scores['nps'], comment FROM {db}.feedback WHERE event_id = 'dup-1'")
    assert (nps, comment) == (2, "first version")
    [(n, total)] = _query(settings, "SELECT n, sum FROM {db}.attribute_scores"
                                    " WHERE attribute = 'nps' AND window_length = 3600")
    assert (n, total) == (4, 2 + 9 + 8 + 9)  # dup-1 counted once, with its first rating
    [hot] = [a for a in alerts if a["kind"] == "hot"]
    assert hot["response"]["event_id"] == "dup-1" and hot["response"]["scores"] == {"nps": nps}

    [letter] = dead
    assert letter["reason_code"] == "duplicate_event"
    assert (letter["origin"], letter["partition"], letter["offset"]) == ("feedback", 0, 3)
    assert "feedback:0:0" in letter["reason"] and "offset 0" in letter["reason"]
    assert letter.value == again.value and letter.key == SITE.encode()
    [(code, offset)] = _query(settings, "SELECT reason_code, offset FROM {db}.dead_letters")
    assert (code, offset) == ("duplicate_event", 3)


def test_a_redelivery_after_a_restart_with_recovery_is_not_a_duplicate(settings, chdb_path, tmp_path):
    settings = _settings(settings, chdb_path, "dup_redelivery")
    recovery = prepare_recovery_dir(tmp_path / "recovery")
    items = [message(i, f"e-{i}", 3 if i == 2 else 9, i) for i in range(4)]
    items.insert(3, TestingSource.ABORT())  # crash after e-2, within the first epoch: nothing committed
    items.append(message(9, "e-0", 9, 0))  # a real duplicate, after the resume
    first_alerts, first_dead = _run(settings, items, recovery, epoch=timedelta(minutes=5))  # stops at the abort
    alerts, dead = _run(settings, items, recovery)
    # e-0..e-2 were read again at their positions (e-2, a detractor, gave its hot alert again, the same).
    hot = [[a for a in run if a["kind"] == "hot"] for run in (first_alerts, alerts)]
    assert [a["response"]["event_id"] for a in hot[0] + hot[1]] == ["e-2", "e-2"]
    assert hot[0][0]["alert_id"] == hot[1][0]["alert_id"] and first_dead == []
    assert [(d["reason_code"], d["offset"]) for d in dead] == [("duplicate_event", 9)]
    optimize_final(connect(settings.warehouse), settings.warehouse.database)
    [(n,)] = _query(settings, "SELECT n FROM {db}.attribute_scores WHERE attribute = 'nps' AND window_length = 3600")
    assert n == 4


def test_a_site_remembers_ids_for_the_dedup_horizon_only():
    from boucle.operators.decode import Feedback
    from boucle.operators.dedup import SeenEvents

    hour = 3_600_000
    seen = SeenEvents(horizon_ms=hour)
    events = [Feedback(f"e{i}", i * 10_000, SITE, "", "", {"nps": 9}, {}, "", "", {}, 0, f"f:0:{i}")
              for i in range(5_000)]  # 5,000 events over ~14 h
    for start in range(0, len(events), 100):
        seen.filter(events[start:start + 100])
        seen.forget_before(events[start + 99].ts_ms)
    assert len(seen.first) < 2 * 1024 + 100  # bounded: swept whenever it doubles
    assert min(ts for ts, _ in seen.first.values()) >= events[-1].ts_ms - 2 * hour - 100 * 10_000
    # Within the horizon a repeat is still caught; beyond it, it is not recognised.
    recent = Feedback("e4990", 4_990 * 10_000, SITE, "", "", {"nps": 1}, {}, "", "", {}, 0, "f:0:9999")
    ancient = Feedback("e0", 0, SITE, "", "", {"nps": 1}, {}, "", "", {}, 0, "f:0:10000")
    kept, dead = seen.filter([recent, ancient])
    assert [d.message.offset for d in dead] == [9999] and kept == [ancient]
