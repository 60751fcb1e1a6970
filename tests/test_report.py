"""``boucle report`` on a synthetic warehouse (real embedded chDB): one offline HTML file whose
sections each embed a plotly figure with data; then a thin CSAT-only network (the simulator's
``reviews`` profile) through the real CLI, and its report opened in headless Chromium.

chDB serves one data path per process: this module opens its own and closes it (``close_all``);
the reviews network is simulated, replayed and reported by ``boucle`` in subprocesses.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import orjson
import pytest
from typer.testing import CliRunner

from boucle.config.locales import collation_key
from boucle.config.settings import Warehouse
from boucle.flows.cli.app import app
from boucle.flows.cli.report import FIGURE_SECTIONS, OUTER_LOOP, SECTIONS, ReportError, parse_period, write_report
from boucle.flows.rows import SERIES_STATUS_COLUMNS, dimension_rows
from boucle.operators.windows import SCORE_COLUMNS
from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import close_all, connect
from boucle.sinks.clickhouse.schema import init_schema
from boucle.sinks.clickhouse.writer import TableWriter

UTC_SCORE_COLUMNS = SCORE_COLUMNS[:-1]  # rows without `day`: the warehouse takes window_start's UTC day

DB = "report"
START = date(2026, 10, 1)
DAYS = 40


def _ms(d: date, hour: int = 0) -> int:
    return int(datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.fixture(scope="module")
def report_settings(settings, tmp_path_factory):
    warehouse = Warehouse(path=str(tmp_path_factory.mktemp("report") / "wh"), database=DB)
    settings = settings.model_copy(update={"warehouse": warehouse})
    client = connect(warehouse)
    init_schema(client, DB, dimensions=dimension_rows(settings))
    rng = random.Random(3)
    questions = list(settings.questions())
    scores, events, alerts = [], [], []
    for i, site in enumerate(settings.sites):
        level = rng.uniform(-0.6, 0.6)
        for day in range(DAYS):
            d = START + timedelta(days=day)
            for q in questions:
                metric = settings.metric(q)
                n = rng.randint(5, 20)
                mean = min(metric.max, max(metric.min, (metric.min + metric.max) * 0.6 + level + rng.gauss(0, 0.3)))
                bottom = rng.randint(0, n // 4)
                top = rng.randint(0, n - bottom)
                scores.append((site.id, site.region, q, 86400, _ms(d), n, round(mean * n), bottom, top))
            for k in range(2):
                wait = rng.randint(1, 5)
                nps = max(0, min(10, 2 * wait + rng.randint(-1, 1)))
                event_id = f"{site.id}-{day}-{k}"
                raw = orjson.dumps({"channel": "store", "journey_stage": "purchase", "scores": {"nps": nps},
                                    "attributes": {"waiting_time": wait, "cleanliness": rng.randint(1, 5)}})
                events.append({"raw": raw, "event_id": event_id, "occurred_at": _ms(d, 10), "received_at": _ms(d, 10),
                               "site_id": site.id, "region": site.region, "comment": "", "customer_id": "",
                               "consent_contact": 0, "late": 0, "origin": f"test:0:{event_id}"})
        if i % 5 == 0:
            for kind, severity in (("hot", "high"), ("attribute", "critical")):
                alerts.append(orjson.dumps({
                    "alert_id": f"{kind}-{site.id}", "kind": kind, "status": "open", "severity": severity,
                    "site_id": site.id, "region": site.region, "attribute": "waiting_time", "triggers": ["peer"],
                    "message": f"Temps d'attente en baisse à {site.name}", "event_time": "2026-11-02T10:00:00Z",
                    "detected_at": "2026-11-02T10:00:05Z"}))
    writer = TableWriter(client, DB)
    writer.insert(TableBatch("attribute_scores", UTC_SCORE_COLUMNS, scores))
    writer.insert(TableBatch.from_columns("feedback", {k: [e[k] for e in events] for k in events[0]}))
    writer.insert(TableBatch.from_columns("alerts", {"payload": alerts}))
    # What the attribute alerts watch: a third of the sites still warming up on every question.
    writer.insert(TableBatch("series_status", SERIES_STATUS_COLUMNS, [
        (site.id, site.region, q, int(i % 3 != 0), 0.0 if i % 3 else 25.0, 80.0, 90, 3.0, _ms(START + timedelta(days=DAYS)))
        for i, site in enumerate(settings.sites) for q in questions]))
    yield settings
    close_all()


def figures(page: str) -> dict[str, list[dict]]:
    """``{div_id: traces}`` of every ``Plotly.newPlot`` call in ``page``."""
    decoder = json.JSONDecoder()
    found = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"([^"]+)",\s*', page):
        found[match[1]], _ = decoder.raw_decode(page, match.end())
    return found


def has_data(trace: dict) -> bool:
    def filled(value) -> bool:
        if isinstance(value, dict):  # plotly's typed-array encoding {"dtype": ..., "bdata": ...}
            return bool(value.get("bdata"))
        return isinstance(value, list) and any(v is not None for v in (value if not value or not isinstance(value[0], list) else sum(value, [])))
    return any(filled(trace.get(axis)) for axis in ("x", "y", "z"))


def test_report_is_offline_and_every_section_has_data(report_settings, tmp_path):
    out = write_report(report_settings, tmp_path / "sub" / "report.html", period="30d")
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and len(page) > 1_000_000  # plotly.js is inlined
    assert not re.search(r'<script[^>]+src=|<link[^>]+href=|@import', page)  # nothing to fetch
    plots = figures(page)
    assert all(f'<section id="{section}">' in page for section in SECTIONS)
    for section in FIGURE_SECTIONS:
        traces = [t for div, ts in plots.items() if div.startswith(f"fig-{section}-") for t in ts]
        assert traces and all(has_data(t) for t in traces), section
    assert "Stand-in" in page  # no attribute_importance table yet: the corr() stand-in is labelled
    n = len(report_settings.sites) * len(report_settings.questions())
    assert f"{n - 16 * len(report_settings.questions()):,} of {n:,} series" in page and "about 25 more" in page
    assert "Paris Bercy" in page and "Île-de-France" in page  # site and region names, not ids
    # Counted over every question's responses (feedback), dates in the report's language.
    assert "period Oct 11, 2026 – Nov 9, 2026 (30 d) · 48 sites · 2,880 responses · headline: NPS" in page
    regions = [t["name"] for t in plots["fig-headline-0"]]
    assert len(regions) == 6 and regions == sorted(regions, key=collation_key) and regions[-1] != "Île-de-France"
    assert "Period widened" not in page  # busy sites: the 30 days hold enough
    site_days = plots["fig-alerts-2"][0]  # hot alerts per site and day (issue 17): one hot alert at every 5th site
    assert site_days["type"] == "heatmap" and len(site_days["y"]) == 10 and "Paris Bercy" in site_days["y"]


def test_report_for_one_region_in_french_with_a_new_period(report_settings, tmp_path):
    client = connect(report_settings.warehouse)
    with pytest.raises(ReportError, match=r"14d is not a comparison period of the warehouse \(7d, 30d, 90d\)"):
        write_report(report_settings, tmp_path / "r.html", region="belgium", period="2w", lang="fr")
    assert 14 not in {r[0] for r in client.query(f"SELECT period_days FROM {DB}.periods").result_rows}
    client.command(f"INSERT INTO {DB}.periods VALUES (14)")  # as the error says (a report only reads)
    out = write_report(report_settings, tmp_path / "r.html", region="belgium", period="2w", lang="fr")
    page = out.read_text(encoding="utf-8")
    assert "Classement des progrès" in page and "Temps d'attente" in page
    plots = figures(page)
    heatmap = plots["fig-peers-0"][0]
    assert all("(" not in label for label in heatmap["y"])  # one region: plain site names
    assert {t["name"] for t in plots["fig-headline-0"]} == {"Belgique"}
    assert "période 27/10/2026 – 09/11/2026 (14 d)" in page
    assert 14 in {r[0] for r in client.query(f"SELECT period_days FROM {DB}.periods").result_rows}


def test_report_uses_the_importance_table_when_it_has_rows(report_settings, tmp_path):
    client = connect(report_settings.warehouse)
    client.command(f"INSERT INTO {DB}.attribute_importance (region, attribute, day, target, weight, updated_at)"
                   " VALUES ('belgium', 'waiting_time', today(), 'nps', 0.7, now64())")
    try:
        page = write_report(report_settings, tmp_path / "i.html", region="belgium").read_text(encoding="utf-8")
    finally:
        client.command(f"TRUNCATE TABLE {DB}.attribute_importance")
    assert "Weights from the importance detector" in page and "Stand-in" not in page


def test_report_says_not_enough_data_instead_of_equal_shares(report_settings, tmp_path):
    client = connect(report_settings.warehouse)
    client.command(f"INSERT INTO {DB}.attribute_importance (region, attribute, day, target, weight, n, status, updated_at)"
                   " VALUES ('belgium', 'waiting_time', today(), 'nps', 0, 12, 'not_enough_data', now64()),"
                   " ('belgium', 'cleanliness', today(), 'nps', 0, 12, 'not_enough_data', now64()),"
                   " ('ile-de-france', 'waiting_time', today(), 'nps', 0.6, 40, 'network', now64())")
    try:
        page = write_report(report_settings, tmp_path / "u.html").read_text(encoding="utf-8")
    finally:
        client.command(f"TRUNCATE TABLE {DB}.attribute_importance")
    assert "Not enough data yet to tell what drives the score in: Belgique." in page and "Stand-in" not in page
    bars = figures(page)["fig-importance-0"]
    assert [bar["name"] for bar in bars] == ["Île-de-France (from the network)"]  # Belgium is not drawn


def test_report_errors_are_clear(report_settings, tmp_path):
    with pytest.raises(ReportError, match="no site of region 'atlantis'"):
        write_report(report_settings, tmp_path / "x.html", region="atlantis")
    with pytest.raises(ReportError, match="whole days"):
        parse_period("36h")


def test_report_in_german_and_a_bad_language_refused(report_settings, tmp_path):
    page = write_report(report_settings, tmp_path / "de.html", period="30d", lang="de").read_text(encoding="utf-8")
    assert '<html lang="de">' in page and "Rangliste der Fortschritte (NPS)" in page and "Was überwacht wird" in page
    with pytest.raises(ReportError, match="--lang must be a language code"):
        write_report(report_settings, tmp_path / "x.html", period="30d", lang="German")


def test_cases_exports_carry_contacts_only_with_consent(report_settings, tmp_path, monkeypatch):
    client = connect(report_settings.warehouse)
    site = report_settings.sites[0].id
    client.command(f"INSERT INTO {DB}.invitations VALUES ('i1', '2026-10-20 10:00:00', '{site}', 'r', 'email', 'c-yes', 1),"
                   f" ('i2', '2026-10-20 11:00:00', '{site}', 'r', 'sms', 'c-no', 0)")
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", report_settings.warehouse.path)
    monkeypatch.setenv("BOUCLE_WAREHOUSE__DATABASE", DB)
    runner = CliRunner()
    try:
        out = tmp_path / "todo.csv"
        done = runner.invoke(app, ["cases", "non-respondents", "--all", "--format", "csv", "-o", str(out)])
        assert done.exit_code == 0, done.output
        rows = {r["invitation_id"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
        assert rows["i1"]["customer_id"] == "c-yes" and rows["i2"]["customer_id"] == ""  # no consent, no contact
        done = runner.invoke(app, ["cases", "summary", "--format", "json"])
        assert done.exit_code == 0, done.output
        done = runner.invoke(app, ["cases", "promoters", "--format", "json", "-o", str(tmp_path / "p.jsonl")])
        assert done.exit_code == 0 and (tmp_path / "p.jsonl").exists(), done.output
    finally:  # the CLI closed the clients of this process as it exited: open one again
        connect(report_settings.warehouse).command(f"TRUNCATE TABLE {DB}.invitations")


# ---- a thin network without NPS: the reviews profile through the real CLI ---------------------

REVIEWS = ["--profile", "reviews", "--sites", "60"]


def boucle(*args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "boucle.flows.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def reviews_reports(tmp_path_factory):
    """The English and French reports of 60 thin CSAT-only sites over 180 days (simulated, replayed)."""
    root = tmp_path_factory.mktemp("reviews")
    env = {**os.environ, "BOUCLE_WAREHOUSE__PATH": str(root / "chdb"), "COLUMNS": "200",
           "BOUCLE_OUTPUTS__ALERTS_JSONL": str(root / "alerts.jsonl"),
           "BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL": str(root / "dead.jsonl")}
    boucle("simulate", *REVIEWS, "--days", "180", "--seed", "4", "-o", str(root / "reviews.jsonl"), env=env)
    boucle("replay", str(root / "reviews.jsonl"), *REVIEWS, "--no-progress", env=env)
    counted = boucle("query", "SELECT uniqExact(site_id), count() FROM feedback FINAL WHERE toDate(occurred_at)"
                     " > (SELECT max(day) FROM site_attribute_daily) - 30", "--format", "csv", env=env)
    for lang in ("en", "fr"):
        boucle("report", "-o", str(root / f"report-{lang}.html"), "--lang", lang, env=env)
    sites, responses = map(int, counted.splitlines()[1].split(","))
    return root, sites, responses


def test_a_thin_csat_network_gets_a_report_that_holds(reviews_reports):
    root, sites, responses = reviews_reports
    page = (root / "report-en.html").read_text(encoding="utf-8")
    meta = json.loads(re.search(r'id="boucle-report">([^<]+)<', page)[1])
    assert meta["headline"] == "csat" and meta["compare_days"] == 90  # no NPS; 30 d too thin per site
    assert "CSAT over time per region" in page and "Progress leaderboard (CSAT)" in page
    assert "This network has no NPS responses: the headline is its first score question, CSAT." in page
    assert re.search(r"Period widened to 90 d: fewer than 5 responses per site in 30 d \(median \d\)", page)
    assert sites > 0 and f"· {sites} sites · {responses:,} responses · headline: CSAT" in page
    plots = figures(page)
    assert all(has_data(t) for t in plots["fig-headline-0"]) and "(n = %{customdata[2]})" in page
    main, grey = plots["fig-peers-0"]  # thin cells: a grey layer of their own, n written in them
    assert grey["showscale"] is False and any(v.startswith("n=") for row in grey["text"] for v in row)
    assert not any(v.startswith("n=") for row in main["text"] for v in row)
    kinds = re.findall(r"alert_id", page)  # ids never reach the page; the timeline's texts name their kind
    assert not kinds
    timeline = [t for div, ts in plots.items() if div.startswith("fig-alerts-") for t in ts if t["type"] == "scatter"]
    assert all(text.split(" · ")[0] in {"attribute alert", "regional incident"} for t in timeline for text in t["text"])
    assert "case SLA" not in json.dumps(timeline)
    assert '<section id="cases">' in page and "median time to first contact" in page
    assert set(OUTER_LOOP) == {"attribute", "regional_incident"}


def test_the_french_report_writes_dates_numbers_and_words_in_french(reviews_reports):
    root, sites, responses = reviews_reports
    page = (root / "report-fr.html").read_text(encoding="utf-8")
    assert '<html lang="fr">' in page and "CSAT par région dans le temps" in page and "Période élargie à 90 j" in page
    assert re.search(r"période \d\d/\d\d/\d{4} – \d\d/\d\d/\d{4}", page)
    assert "alerte attribut" in page or "incident régional" in page or "Alertes" in page
    assert "Oct" not in re.sub(r"<script.*?</script>", "", page, flags=re.S)  # no English month in the HTML


def test_the_report_renders_in_chromium(reviews_reports, tmp_path):
    """A real browser: every figure drawn, the headline says CSAT, no console errors."""
    from boucle.flows.cli.report import screenshot

    root, _, _ = reviews_reports
    assert os.path.exists("/usr/bin/chromium") or os.environ.get("BOUCLE_CHROMIUM"), \
        "the browser test needs Chromium: `make test` installs it (apt-get install chromium)"
    seen = screenshot(root / "report-en.html", tmp_path / "top.png")
    assert seen["errors"] == []
    assert seen["expected"] >= 5 and seen["plots"] == seen["expected"]
    assert "CSAT" in seen["headline"]
    png = (tmp_path / "top.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) < 500_000
