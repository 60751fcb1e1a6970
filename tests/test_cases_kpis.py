"""The loop's KPIs in the warehouse equal a hand computation on a small scripted scenario (chDB)."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from boucle.config.times import iso_ms, parse_time
from boucle.flows.cli.cases import loop_totals, site_kpis, top_themes
from boucle.flows.rows import dimension_rows
from boucle.operators.cases import CaseEvent, CaseTracker, case_rows
from boucle.operators.invitations import Invitation, invitation_rows
from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.schema import init_schema
from boucle.sinks.clickhouse.writer import TableWriter

H = 3_600_000
T0 = parse_time("2026-10-01T10:00:00Z")


@pytest.fixture(scope="module")
def warehouse(settings, tmp_path_factory):
    """chDB serves one data path per process: this module's own path and database, closed at the end."""
    path = tmp_path_factory.mktemp("chdb_cases") / "warehouse"
    wh = settings.warehouse.model_copy(update={"path": str(path), "url": None, "database": "loop_kpis"})
    client = connect(wh)
    init_schema(client, wh.database, dimensions=dimension_rows(settings))
    yield client, wh.database, TableWriter(client, wh.database)
    close_all()


def scenario(settings):
    """Six hot alerts at two sites, their case events, and the clock at T0 + 100 h (SLA 24 h)."""
    t = CaseTracker(settings.site_map(), settings.cases.model_copy(update={"sla": timedelta(hours=24)}))
    out = []
    for aid, site, opened in [("A", "store-0001", 0), ("B", "store-0001", 0), ("C", "store-0001", 0),
                              ("D", "store-0002", 0), ("E", "store-0002", 0), ("F", "store-0002", 90)]:
        out += t.on_alert({"alert_id": aid, "kind": "hot", "site_id": site, "region": "ile-de-france",
                           "severity": "medium", "event_time": iso_ms(T0 + opened * H)})
    for aid, action, hours, first in [
        ("A", "contacted", 2, True), ("A", "resolved", 2.25, True),          # FCR
        ("B", "contacted", 30, True),                                        # contacted too late: untreated
        ("D", "contacted", 4, True), ("D", "escalated", 5, False), ("D", "resolved", 50, False),
        ("E", "escalated", 10, False),                                       # an action in time, no contact
    ]:  # C: nothing (untreated); F: opened at 90 h, not due yet at 100 h (pending)
        out += t.on_event(CaseEvent(aid, action, T0 + int(hours * H), "team", first))
    out += t.on_tick(T0 + 100 * H)
    return out


def test_case_kpis_equal_a_hand_computation(settings, warehouse):
    client, db, writer = warehouse
    out = scenario(settings)
    for batch in case_rows(row for kind, row in out if kind == "case"):  # every version: FINAL keeps the last
        writer.insert(batch)
    assert sum(1 for kind, a in out if kind == "alert" and a["kind"] == "case_sla") == 2  # B and C

    by_site = {r["site_id"]: r for r in site_kpis(client, db)}
    s1, s2 = by_site["store-0001"], by_site["store-0002"]
    assert (s1["cases"], s1["contacted_cases"], s1["fcr_cases"], s1["decided_cases"], s1["untreated_cases"],
            s1["escalated_cases"], s1["pending_cases"]) == (3, 2, 1, 3, 2, 0, 0)
    assert s1["contacted_share"] == pytest.approx(2 / 3)
    assert s1["hours_to_first_contact"] == pytest.approx((2 + 30) / 2)
    assert s1["fcr_rate"] == pytest.approx(1 / 2)
    assert s1["untreated_rate"] == pytest.approx(2 / 3)
    assert s1["site_name"] == "Paris Bercy"
    assert (s2["cases"], s2["contacted_cases"], s2["fcr_cases"], s2["decided_cases"], s2["untreated_cases"],
            s2["escalated_cases"], s2["pending_cases"]) == (3, 1, 0, 2, 0, 2, 1)
    assert s2["hours_to_first_contact"] == pytest.approx(4)
    assert (s2["fcr_rate"], s2["untreated_rate"]) == (0, 0)
    assert s2["escalation_rate"] == pytest.approx(2 / 3)

    totals = loop_totals(client, db)
    assert (totals["cases"], totals["contacted"], totals["fcr"], totals["decided"], totals["untreated"],
            totals["escalated"], totals["sla_alerts"]) == (6, 3, 1, 5, 2, 2, 2)
    assert totals["fcr_rate"] == pytest.approx(1 / 3)
    assert totals["untreated_rate"] == pytest.approx(2 / 5)
    assert totals["hours_mean"] == pytest.approx((2 + 30 + 4) / 3)
    assert loop_totals(client, db, region="belgium")["cases"] == 0


def test_response_rate_non_respondents_promoters_and_comment_search(settings, warehouse):
    client, db, writer = warehouse
    region_of = {s.id: s.region for s in settings.sites}
    sent = T0 - 10 * 24 * H
    invitations = [Invitation("i1", sent, "store-0003", "email", "c1", True),
                   Invitation("i2", sent, "store-0003", "email", "c2", True),
                   Invitation("i3", sent, "store-0003", "sms", "c3", False),
                   Invitation("i4", T0 - H, "store-0003", "sms", "c4", True)]  # sent 1 h before the clock
    for batch in invitation_rows(invitations, region_of):
        writer.insert(batch)
    raw = b'{"scores": {"nps": 10}, "channel": "email"}'
    writer.insert(TableBatch.from_columns("feedback", {
        "raw": [raw, raw], "event_id": ["e1", "e2"], "occurred_at": [sent + 2 * H, T0],
        "received_at": [sent + 2 * H, T0], "site_id": ["store-0003", "store-0004"],
        "region": ["ile-de-france"] * 2, "comment": ["Attente interminable en caisse", "Super accueil"],
        "customer_id": ["c1", "c9"], "consent_contact": [1, 0], "late": [0, 0], "origin": ["t:0:0", "t:0:1"],
    }))
    totals = loop_totals(client, db, region="ile-de-france", after_days=3)
    assert (totals["invitations"], totals["responses"], totals["non_respondents"],
            totals["non_respondents_consenting"]) == (4, 1, 2, 1)  # i4 is not 3 days old yet
    assert totals["response_rate"] == pytest.approx(1 / 4)
    assert totals["promoters_consenting"] == 1  # e2 did not consent
    rates = dict(((r[0], r[1]), r[2]) for r in client.query(
        f"SELECT site_id, channel, response_rate FROM {db}.v_response_rates").result_rows)
    assert rates[("store-0003", "email")] == pytest.approx(1 / 2) and rates[("store-0003", "sms")] == 0
    hits = client.query(f"SELECT event_id FROM {db}.feedback WHERE hasToken(lower(comment), 'attente')").result_rows
    assert hits == [("e1",)]
    plan = "\n".join(r[0] for r in client.query(
        f"EXPLAIN indexes = 1 SELECT event_id FROM {db}.feedback WHERE hasToken(lower(comment), 'attente')").result_rows)
    assert "comment_tokens" in plan
    writer.insert(TableBatch("comment_themes", ("site_id", "region", "window_length", "window_start", "theme", "n",
                                                "comments"), [("store-0003", "ile-de-france", 86400, T0, "waiting_time", 1, 1)]))
    assert top_themes(client, db, region="ile-de-france") == [("waiting_time", 1, 0.5)]
    assert math.isnan(loop_totals(client, db, region="uk-south")["response_rate"])
