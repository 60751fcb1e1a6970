"""The whole embedded flow over the simulator, on real chDB, with one worker and with two.

Checks what a user would: every accepted event is stored once, every rejected one is in
dead_letters with its reason, every injected bad response fired its hot alert, and the windowed
scores equal a recomputation from the stored raw events.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

import jsonschema
import orjson
import pytest
from bytewax.testing import TestingSink, cluster_main, run_main

from boucle.config.times import local_days
from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.rows import dead_letter_text
from boucle.flows.stats import RunStats
from boucle.operators.alerts import alert_json
from boucle.operators.windows import window_bounds
from boucle.schemas import alert_schema
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.query import optimize_final
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sources.simulator import Simulator, SimulatorSource

pytestmark = pytest.mark.slow
DAYS = 5


@pytest.fixture(scope="module")
def chdb_path(tmp_path_factory):
    """chDB serves one data path per process: the module's tests share it, one database each."""
    path = tmp_path_factory.mktemp("chdb") / "warehouse"
    yield str(path)
    close_all()


@pytest.fixture(scope="module")
def simulator(settings):
    return Simulator(settings, seed=11, days=DAYS)


def _run(settings, simulator, chdb_path, workers):
    warehouse = settings.warehouse.model_copy(
        update={"path": chdb_path, "url": None, "database": f"e2e_{workers}w", "batch_rows": 5000}
    )
    settings = settings.model_copy(update={"warehouse": warehouse})
    alerts, dead = [], []
    stats = RunStats()
    outputs = FlowOutputs(
        warehouse=ClickHouseSink(warehouse), alerts=[TestingSink(alerts)], dead_letters=[TestingSink(dead)]
    )
    flow = build_flow(settings, SimulatorSource(simulator, partitions=workers, batch_size=1000), outputs, stats)
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    client = connect(warehouse)
    optimize_final(client, warehouse.database)
    return settings, client, stats, alerts, dead


@pytest.fixture(scope="module", params=[1, 2], ids=["run_main", "cluster_main-2-workers"])
def outcome(request, settings, simulator, chdb_path):
    return _run(settings, simulator, chdb_path, request.param)


def _query(client, db, sql):
    return client.query(sql.format(db=db)).result_rows


def test_every_accepted_event_is_stored_once(outcome, simulator):
    settings, client, stats, _, _ = outcome
    db = settings.warehouse.database
    malformed = [label for label in simulator.labels() if label["type"] == "malformed"]
    assert stats.read == simulator.count()
    assert stats.accepted == stats.read - len(malformed)
    assert _query(client, db, "SELECT count(), uniqExact(event_id) FROM {db}.feedback")[0] == (
        stats.accepted,
        stats.accepted,
    )


def test_every_rejected_event_is_dead_lettered_with_its_reason(outcome, simulator):
    settings, client, stats, _, dead = outcome
    codes = {label["raw_sha1"]: label["reason_code"] for label in simulator.labels() if label["type"] == "malformed"}
    # Stored masked (privacy.keep_raw is off): the masked text of each malformed message.
    expected = {
        hashlib.sha1(dead_letter_text(m.value).encode()).hexdigest(): codes[sha]
        for m in simulator.messages() if (sha := hashlib.sha1(m.value).hexdigest()) in codes
    }
    assert {"invalid_json", "unknown_site", "out_of_scale", "missing_field", "bad_timestamp"} <= set(
        expected.values()
    )
    rows = _query(client, settings.warehouse.database, "SELECT raw, reason_code, reason FROM {db}.dead_letters")
    stored = {hashlib.sha1(raw if isinstance(raw, bytes) else raw.encode()).hexdigest(): code for raw, code, _ in rows}
    assert stored == expected
    assert all(reason for _, _, reason in rows)
    assert len(dead) == stats.rejected == len(expected)


def test_every_injected_bad_response_fires_its_hot_alert(outcome, simulator):
    settings, client, stats, alerts, _ = outcome
    bad = {label["event_id"] for label in simulator.labels() if label["type"] == "bad_response"}
    assert bad, "the simulation should inject a burst of bad responses"
    hot = {alert["response"]["event_id"]: alert for alert in alerts if alert["kind"] == "hot"}
    assert bad <= set(hot)
    for event_id in bad:
        alert = hot[event_id]
        assert alert["owner"] == settings.site_map()[alert["site_id"]].owner
        assert "contact" in alert  # burst customers consented
    stored = _query(client, settings.warehouse.database, "SELECT count(), uniqExact(alert_id) FROM {db}.alerts")
    assert stored[0] == (len(alerts), len(alerts))
    # The run summary's counts: alerts opened by kind, their later states apart.
    assert stats.alerts_by_kind == Counter(alert["kind"] for alert in alerts if alert["status"] == "open")
    assert stats.alert_states == Counter((a["kind"], a["status"]) for a in alerts if a["status"] != "open")


def test_every_alert_follows_the_published_schema(outcome):
    alerts = outcome[3]
    validator = jsonschema.Draft202012Validator(alert_schema(), format_checker=jsonschema.FormatChecker())
    assert alerts  # all kinds, the loop's included: tests/test_alert_schema.py
    for alert in alerts:
        error = next(validator.iter_errors(orjson.loads(alert_json(alert))), None)
        assert error is None, f"{alert['kind']} {alert['alert_id']}: {error.message} at {list(error.path)}"


def test_late_flags_only_delayed_arrivals(outcome, simulator):
    settings, client, stats, _, _ = outcome
    delayed = {label["event_id"] for label in simulator.labels() if label["type"] == "late"}
    late = {row[0] for row in _query(client, settings.warehouse.database, "SELECT event_id FROM {db}.feedback WHERE late")}
    assert len(late) == stats.late
    assert late <= delayed


def test_attribute_scores_equal_a_recomputation_from_raw_events(outcome):
    settings, client, _, _, _ = outcome
    db = settings.warehouse.database
    scales = settings.questions()
    lengths = [int(length.total_seconds()) for length in settings.windows.lengths]
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    events = _query(
        client, db, "SELECT site_id, toUnixTimestamp64Milli(occurred_at), scores, attributes FROM {db}.feedback WHERE NOT late"
    )
    zones = settings.site_zones()  # daily windows start at each site's local midnight
    for site_id, ts, scores, attributes in events:
        days = local_days(zones[site_id])
        for question, value in {**scores, **attributes}.items():
            for length in lengths:
                agg = expected[(site_id, question, length, window_bounds(length * 1000, ts, days)[0])]
                agg[0] += 1
                agg[1] += value
                agg[2] += value <= scales[question].bottom_max
                agg[3] += value >= scales[question].top_min
    rows = _query(
        client,
        db,
        "SELECT site_id, attribute, window_length, toUnixTimestamp64Milli(window_start), n, sum, bottom_n, top_n,"
        " mean, bottom_share, window_end - window_start FROM {db}.attribute_scores",
    )
    got = {row[:4]: list(row[4:8]) for row in rows}
    assert got == dict(expected)
    for row in rows:
        n, total, bottom = row[4], row[5], row[6]
        assert row[8] == pytest.approx(total / n) and row[9] == pytest.approx(bottom / n)
        assert row[10] == row[2]


def test_one_and_two_workers_agree(settings, simulator, chdb_path):
    """Per-site results do not depend on the number of workers.

    Attribute alerts are left out: their region step compares sites with each other as their
    summaries arrive, and how the sites' streams interleave depends on the partitioning.
    """
    results = {}
    for workers in (1, 2):
        s, client, stats, alerts, _ = _run(settings, simulator, chdb_path, workers)
        counts = _query(
            client, s.warehouse.database, "SELECT count(), sum(n), sum(sum) FROM {db}.attribute_scores"
        )[0]
        hot = sorted(a["alert_id"] for a in alerts if a["kind"] == "hot")
        results[workers] = (stats.accepted, stats.rejected, stats.late, hot, counts)
    assert results[1] == results[2]


def test_attribute_importance_is_stored_per_region_and_day(outcome):
    settings, client, _, _, _ = outcome
    db = settings.warehouse.database
    rows = _query(client, db, "SELECT region, day, round(sum(weight), 6), count(), any(status)"
                              " FROM {db}.attribute_importance FINAL GROUP BY region, day")
    regions = {site.region for site in settings.sites}
    assert {row[0] for row in rows} == regions
    assert len({row[1] for row in rows}) >= DAYS - 1  # one snapshot per event-time day (and the last, partial one)
    assert all(row[3] == len(settings.attributes) for row in rows)
    # Known weights sum to 1; "not enough data" is said, with no weight, not equal shares.
    assert all(row[2] == (0.0 if row[4] == "not_enough_data" else 1.0) for row in rows)
    assert {row[4] for row in rows} >= {"learnt"} and {row[4] for row in rows} <= {"learnt", "network", "not_enough_data"}
    overall = _query(client, db, "SELECT attribute, weight FROM {db}.v_attribute_importance WHERE region = 'all'")
    assert len(overall) == len(settings.attributes) and sum(w for _, w in overall) == pytest.approx(1.0)


def test_the_warehouse_and_the_run_say_which_series_are_watched(outcome, simulator):
    """Every (site, question) series the attribute alerts saw has one status row; after five days
    the busiest sites are watched and the thinnest still warming up, with what they still need."""
    settings, client, stats, _, _ = outcome
    db = settings.warehouse.database
    rows = _query(client, db, "SELECT site_id, question, status, needs, responses FROM {db}.v_series_status")
    watched, seen = stats.series_watched
    assert len(rows) == seen == len({(r[0], r[1]) for r in rows}) > 0
    assert sum(r[2] == "watched" for r in rows) == watched
    assert 0 < watched < seen  # the demo's busy sites have the history after five days, its thin ones not yet
    assert all((r[3] == 0) == (r[2] == "watched") for r in rows)
    questions = {r[1] for r in rows}
    assert {"nps", "csat", "ces"} <= questions  # headline scores are series too
