"""The BI views on a small hand-computable dataset, on real embedded chDB.

Five sites, one attribute and NPS, one day in the current 7-day period and one in the previous:

=====  ======  =====  =====================  ======================  =======
site   region  kind   current (Oct 10)       previous (Oct 3)        delta
=====  ======  =====  =====================  ======================  =======
A      north   hyper  waiting 40/10 = 4.0    30/10 = 3.0             +1.0
B      north   hyper  40/10 = 4.0 (tie A)    45/10 = 4.5             -0.5
C      north   city   15/5 = 3.0             10/5 = 2.0              +1.0
D      north   hyper  8/4 = 2.0              none (not on the board)
E      south   city   10/2 = 5.0 (no peers)  8/2 = 4.0               +1.0
=====  ======  =====  =====================  ======================  =======

North scores [4, 4, 3, 2]: median 3.5 (mean of the two middle values), absolute deviations
[.5, .5, .5, 1.5] so MAD .5 and spread 1.4826 x .5; ranks 1, 1, 3, 4 (ties share the best rank);
percentile = 100 x (sites strictly lower) / (sites - 1) = 66.7, 66.7, 33.3, 0.

chDB serves one data path per process: this module opens its own and closes it (``close_all``).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import orjson
import pytest

from boucle.config.settings import Attribute, Region, Settings, Site, Warehouse
from boucle.flows.rows import dimension_rows
from boucle.operators.windows import SCORE_COLUMNS
from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.schema import (
    applied_migrations,
    init_schema,
    migrate,
    migrations,
    sync_dimensions,
)
from boucle.sinks.clickhouse.writer import TableWriter

UTC_SCORE_COLUMNS = SCORE_COLUMNS[:-1]  # rows without `day`: the warehouse takes window_start's UTC day

DB = "views"
DAY = 86400
HOUR = 3600
Z = 1.4826 * 0.5  # north's robust spread


def ms(d: date, hour: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc).timestamp() * 1000)


CUR, PREV = date(2026, 10, 10), date(2026, 10, 3)
ANCHOR = date(2026, 10, 14)  # the last day with a closed daily window (a site F row below)

SETTINGS = Settings(
    regions=[Region(id="north", name="Nord"), Region(id="south", name="Sud")],
    sites=[
        Site(id="A", name="Lille Centre", region="north", kind="hyper", country="FR"),
        Site(id="B", name="Roubaix", region="north", kind="hyper", country="FR"),
        Site(id="C", name="Arras", region="north", kind="city", country="FR"),
        Site(id="D", name="Douai", region="north", kind="hyper", country="FR"),
        Site(id="E", name="Marseille", region="south", kind="city", country="FR"),
        Site(id="F", name="Nice", region="south", kind="hyper", country="FR"),
    ],
    attributes=[Attribute(name="waiting_time", label_fr="Temps d'attente", label_en="Waiting time")],
)


def score(site, region, attribute, day, n, total, bottom, top, length=DAY, hour=0):
    return (site, region, attribute, length, ms(day, hour), n, total, bottom, top)


# The daily windows. A's window of Oct 10 is first emitted early (n = 6) then again complete: the
# larger version wins. Hourly windows are ignored by the daily rollups.
SCORES = [
    score("A", "north", "waiting_time", CUR, 6, 24, 0, 4),
    score("A", "north", "waiting_time", CUR, 10, 40, 1, 8),
    score("B", "north", "waiting_time", CUR, 10, 40, 0, 8),
    score("C", "north", "waiting_time", CUR, 5, 15, 1, 2),
    score("D", "north", "waiting_time", CUR, 4, 8, 2, 0),
    score("E", "south", "waiting_time", CUR, 2, 10, 0, 2),
    score("A", "north", "waiting_time", PREV, 10, 30, 3, 4),
    score("B", "north", "waiting_time", PREV, 10, 45, 0, 10),
    score("C", "north", "waiting_time", PREV, 5, 10, 4, 1),
    score("E", "south", "waiting_time", PREV, 2, 8, 0, 2),
    # NPS: A 5 promoters, 2 detractors of 10 -> NPS 30; B 2 and 4 of 10 -> -20.
    score("A", "north", "nps", CUR, 10, 80, 2, 5),
    score("B", "north", "nps", CUR, 10, 60, 4, 2),
    score("A", "north", "nps", CUR, 4, 30, 1, 2, length=HOUR, hour=9),
    score("A", "north", "waiting_time", CUR, 3, 3, 3, 0, length=HOUR, hour=9),
    # F fixes the period end (Oct 14) without being in the waiting_time comparison.
    score("F", "south", "csat", ANCHOR, 1, 5, 0, 1),
]


def event(event_id, site, region, channel, stage, scores, attributes, late=0):
    raw = orjson.dumps({"event_id": event_id, "site_id": site, "channel": channel, "journey_stage": stage,
                        "scores": scores, "attributes": attributes, "language": "fr"})
    t = ms(CUR, 10)
    return {"raw": raw, "event_id": event_id, "occurred_at": t, "received_at": t, "site_id": site,
            "region": region, "comment": "", "customer_id": "", "consent_contact": 0, "late": late,
            "origin": f"test:0:{event_id}"}


EVENTS = [
    event("e1", "A", "north", "web", "purchase", {"nps": 10}, {"waiting_time": 5}),
    event("e2", "A", "north", "web", "purchase", {"nps": 3}, {"waiting_time": 2}),
    event("e3", "B", "north", "store", "delivery", {"nps": 8}, {}, late=1),
]


def alert(alert_id, status, event_hour, detected_minute, site="A"):
    return orjson.dumps({
        "alert_id": alert_id, "kind": "attribute", "status": status, "severity": "high", "site_id": site,
        "region": "north", "attribute": "waiting_time", "triggers": ["peer"], "message": f"{alert_id} {status}",
        "event_time": f"2026-10-10T{event_hour:02d}:00:00Z", "detected_at": f"2026-10-10T12:{detected_minute:02d}:00Z",
    })


ALERTS = [alert("x", "open", 9, 1), alert("x", "updated", 10, 2), alert("x", "resolved", 11, 3),
          alert("y", "open", 9, 4, site="B")]


def batches(split: int) -> list[TableBatch]:
    """The whole dataset; ``split`` cuts it into differently shaped blocks (defeats block dedup)."""
    out = [TableBatch("attribute_scores", UTC_SCORE_COLUMNS, SCORES[i:i + split]) for i in range(0, len(SCORES), split)]
    for i in range(0, len(EVENTS), split):
        part = EVENTS[i:i + split]
        out.append(TableBatch.from_columns("feedback", {k: [e[k] for e in part] for k in part[0]}))
    for i in range(0, len(ALERTS), split):
        out.append(TableBatch.from_columns("alerts", {"payload": ALERTS[i:i + split]}))
    return out


@pytest.fixture(scope="module")
def ch(tmp_path_factory):
    client = connect(Warehouse(path=str(tmp_path_factory.mktemp("views") / "wh"), database=DB))
    init_schema(client, DB, dimensions=dimension_rows(SETTINGS))
    writer = TableWriter(client, DB)
    for batch in batches(split=100):
        writer.insert(batch)
    yield client
    close_all()


def rows(ch, sql: str, **params) -> list[dict]:
    result = ch.query(sql.replace("{db}", DB), parameters=params)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def by_site(ch, view: str, where: str = "1") -> dict[str, dict]:
    return {r["site_id"]: r for r in rows(ch, f"SELECT * FROM {{db}}.{view} WHERE {where}")}


def snapshot(ch) -> dict[str, list]:
    views = ["v_site_attribute_daily", "v_region_daily", "v_nps_daily", "v_nps_region_daily",
             "v_peer_comparison", "v_leaderboard", "v_journey", "v_alerts"]
    return {v: sorted(map(repr, ch.query(f"SELECT * FROM {DB}.{v}").result_rows)) for v in views}


# ---- views ------------------------------------------------------------------------------------

def test_site_attribute_daily(ch):
    got = by_site(ch, "v_site_attribute_daily", f"attribute = 'waiting_time' AND day = '{CUR}'")
    assert set(got) == set("ABCDE")
    a = got["A"]  # the complete window (n = 10) replaced the early one; the hourly one is ignored
    assert (a["n"], a["mean"], a["bottom_n"], a["bottom_share"], a["top_share"]) == (10, 4.0, 1, 0.1, 0.8)
    assert (a["site_name"], a["region_name"], a["kind"], a["score"]) == ("Lille Centre", "Nord", "hyper", 4.0)
    assert got["D"]["bottom_share"] == 0.5


def test_nps_daily_and_region(ch):
    got = by_site(ch, "v_nps_daily")
    assert set(got) == {"A", "B"}
    a, b = got["A"], got["B"]
    assert (a["responses"], a["promoters"], a["passives"], a["detractors"], a["nps"]) == (10, 5, 3, 2, 30.0)
    assert (b["promoters"], b["passives"], b["detractors"], b["nps"]) == (2, 4, 4, -20.0)
    [north] = rows(ch, "SELECT * FROM {db}.v_nps_region_daily")
    assert (north["region"], north["region_name"], north["sites"], north["responses"]) == ("north", "Nord", 2, 20)
    assert (north["promoters"], north["passives"], north["detractors"], north["nps"]) == (7, 7, 6, 5.0)


def test_region_daily(ch):
    [r] = rows(ch, f"SELECT * FROM {{db}}.v_region_daily WHERE region = 'north' AND attribute = 'waiting_time'"
                   f" AND day = '{CUR}'")
    assert (r["sites"], r["n"], r["bottom_n"], r["top_n"]) == (4, 29, 4, 18)
    assert r["mean"] == pytest.approx(103 / 29)


def test_peer_comparison_region(ch):
    got = by_site(ch, "v_peer_comparison", "period_days = 7 AND attribute = 'waiting_time'")
    assert set(got) == set("ABCDE")
    for r in got.values():
        assert (r["period_start"], r["period_end"]) == (date(2026, 10, 8), ANCHOR)
    north = {s: got[s] for s in "ABCD"}
    assert [north[s]["score"] for s in "ABCD"] == [4.0, 4.0, 3.0, 2.0]
    assert {north[s]["region_sites"] for s in "ABCD"} == {4}
    assert {north[s]["region_peer_median"] for s in "ABCD"} == {3.5}
    assert north["A"]["region_peer_spread"] == pytest.approx(Z)
    assert [north[s]["region_rank"] for s in "ABCD"] == [1, 1, 3, 4]
    assert [north[s]["region_percentile"] for s in "ABCD"] == pytest.approx([200 / 3, 200 / 3, 100 / 3, 0])
    assert [north[s]["robust_z"] for s in "ABCD"] == pytest.approx([0.5 / Z, 0.5 / Z, -0.5 / Z, -1.5 / Z])
    assert north["A"]["site_name"] == "Lille Centre" and north["A"]["n"] == 10


def test_peer_comparison_kind_and_no_peers(ch):
    got = by_site(ch, "v_peer_comparison", "period_days = 7 AND attribute = 'waiting_time'")
    # hyper in north: A, B, D with [4, 4, 2]: median 4, deviations [0, 0, 2] -> MAD 0 -> no z
    for s in "ABD":
        assert (got[s]["kind_sites"], got[s]["kind_peer_median"], got[s]["kind_peer_spread"]) == (3, 4.0, 0.0)
        assert got[s]["kind_robust_z"] is None
    assert [got[s]["kind_rank"] for s in "ABD"] == [1, 1, 3]
    assert [got[s]["kind_percentile"] for s in "ABD"] == [50.0, 50.0, 0.0]
    # C is the only city site of north; E is alone in south: ranked first of one, nothing else.
    for s, field in (("C", "kind"), ("E", "region"), ("E", "kind")):
        r = got[s]
        assert r[f"{field}_sites"] == 1 and r[f"{field}_rank"] == 1
        assert r[f"{field}_peer_median"] is None and r[f"{field}_peer_spread"] is None
        assert r[f"{field}_percentile"] is None
    assert got["E"]["robust_z"] is None and got["E"]["score"] == 5.0


def test_peer_comparison_longer_period_pools_days(ch):
    got = by_site(ch, "v_peer_comparison", "period_days = 30 AND attribute = 'waiting_time'")
    assert got["A"]["n"] == 20 and got["A"]["score"] == 3.5  # (40 + 30) / 20
    assert got["A"]["period_start"] == date(2026, 9, 15)


def test_leaderboard(ch):
    got = by_site(ch, "v_leaderboard", "period_days = 7 AND attribute = 'waiting_time'")
    assert set(got) == set("ABCE")  # D has no previous period
    assert [got[s]["delta"] for s in "ABCE"] == [1.0, -0.5, 1.0, 1.0]
    assert [got[s]["previous_score"] for s in "ABC"] == [3.0, 4.5, 2.0]
    assert [got[s]["progress_rank"] for s in "ABC"] == [1, 3, 1]
    assert [got[s]["level_rank"] for s in "ABC"] == [1, 1, 3]
    assert {got[s]["region_median_delta"] for s in "ABC"} == {1.0}
    assert [got[s]["delta_vs_region"] for s in "ABC"] == [0.0, -1.5, 0.0]
    assert (got["E"]["progress_rank"], got["E"]["region_sites"], got["E"]["delta_vs_region"]) == (1, 1, 0.0)


def test_journey(ch):
    got = {(r["channel"], r["journey_stage"], r["attribute"]): r for r in rows(ch, "SELECT * FROM {db}.v_journey")}
    assert set(got) == {("web", "purchase", "nps"), ("web", "purchase", "waiting_time"), ("store", "delivery", "nps")}
    nps = got["web", "purchase", "nps"]
    assert (nps["n"], nps["mean"], nps["top_n"], nps["bottom_n"], nps["score"], nps["late_n"]) == (2, 6.5, 1, 1, 0.0, 0)
    wait = got["web", "purchase", "waiting_time"]
    assert (wait["n"], wait["mean"], wait["bottom_share"], wait["top_share"]) == (2, 3.5, 0.5, 0.5)
    late = got["store", "delivery", "nps"]  # late responses are in feedback, so in v_journey
    assert (late["n"], late["score"], late["late_n"]) == (1, 0.0, 1)


def test_alerts_latest_state(ch):
    got = {r["alert_id"]: r for r in rows(ch, "SELECT * FROM {db}.v_alerts")}
    x, y = got["x"], got["y"]
    assert (x["status"], x["updates"], x["message"], x["site_name"]) == ("resolved", 3, "x resolved", "Lille Centre")
    assert x["opened_at"] == datetime(2026, 10, 10, 12, 1, tzinfo=timezone.utc)
    assert x["resolved_at"] == datetime(2026, 10, 10, 12, 3, tzinfo=timezone.utc)
    assert x["first_event_time"].hour == 9 and x["event_time"].hour == 11
    assert (y["status"], y["updates"], y["resolved_at"], y["site_name"]) == ("open", 1, None, "Roubaix")


# ---- idempotence ------------------------------------------------------------------------------

def test_reinserting_the_same_batches_changes_nothing(ch):
    before = snapshot(ch)
    writer = TableWriter(ch, DB)
    for split in (100, 100, 3, 1):  # identical blocks (dropped by dedup), then differently cut ones
        for batch in batches(split):
            writer.insert(batch)
    assert snapshot(ch) == before
    ch.command(f"OPTIMIZE TABLE {DB}.site_attribute_daily FINAL")
    ch.command(f"OPTIMIZE TABLE {DB}.region_daily FINAL")
    assert snapshot(ch) == before


def test_migrations_twice_are_a_no_op(ch):
    def tables():
        return ch.query(
            "SELECT name, create_table_query, metadata_modification_time FROM system.tables"
            " WHERE database = {db:String} ORDER BY name", parameters={"db": DB}).result_rows

    before, recorded = tables(), applied_migrations(ch, DB)
    assert sorted(recorded) == [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
    assert migrate(ch, DB) == []
    assert init_schema(ch, DB, dimensions=dimension_rows(SETTINGS)) == []
    assert sync_dimensions(ch, DB, dimension_rows(SETTINGS)) == 0
    assert tables() == before and applied_migrations(ch, DB) == recorded
    assert ch.query(f"SELECT count() FROM {DB}.schema_migrations").result_rows[0][0] == len(migrations())
    assert ch.query(f"SELECT count() FROM {DB}.sites").result_rows[0][0] == 6
    assert ch.query(f"SELECT groupArray(period_days) FROM {DB}.periods").result_rows[0][0] == [7, 30, 90]


def test_importance_status_migrates_an_older_warehouse_and_the_view_says_what_is_known(ch):
    old = f"{DB}_v6"
    for migration in migrations():
        if migration.version <= 6:  # a warehouse of before the importance status
            for statement in migration.statements(old):
                ch.command(statement)
    ch.command(f"INSERT INTO {old}.attribute_importance (region, attribute, day, target, weight, correlation, n,"
               " updated_at) VALUES ('north', 'waiting_time', '2026-10-01', 'nps', 0.6, 0.4, 80, '2026-10-01 12:00:00')")
    assert "v0008_importance_status" in migrate(ch, old)
    ch.command(f"INSERT INTO {old}.attribute_importance (region, attribute, day, target, weight, correlation, n,"
               " status, answered, updated_at) VALUES ('south', 'waiting_time', '2026-10-01', 'nps', 0, 0, 9,"
               " 'not_enough_data', 9, '2026-10-01 12:00:00')")
    view = {r["region"]: r for r in rows(ch, f"SELECT * FROM {old}.v_attribute_importance")}
    assert view["north"]["status"] == "learnt" and view["north"]["weight"] == 0.6  # older rows: learnt
    assert view["south"]["status"] == "not_enough_data"
    # The network average counts only the regions that know: not diluted by the unknown one's 0.
    assert view["all"]["weight"] == pytest.approx(0.6) and view["all"]["status"] == "learnt"
    ch.command(f"DROP DATABASE {old}")


def test_retention_ttl_is_set_once_and_removable(ch):
    from datetime import timedelta

    from boucle.sinks.clickhouse.schema import apply_retention

    assert len(apply_retention(ch, DB, timedelta(days=400))) == 9  # + cases, invitations, comment_themes (v0005)
    assert apply_retention(ch, DB, timedelta(days=400)) == []
    engine = ch.query(f"SELECT engine_full FROM system.tables WHERE database = '{DB}' AND name = 'feedback'")
    assert "TTL toDateTime(occurred_at) + toIntervalDay(400)" in engine.result_rows[0][0]
    assert len(apply_retention(ch, DB, None)) == 9
    assert apply_retention(ch, DB, None) == []
