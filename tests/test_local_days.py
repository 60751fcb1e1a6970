"""Site-local business days (issue 16): daily windows, rollups and the views' ``day`` follow each
site's registry time zone, across changes of clocks, west and east of UTC."""

from __future__ import annotations

import json

import orjson
from typer.testing import CliRunner

from boucle.config.loader import settings_from_dict
from boucle.config.settings import RateCap, Site, Themes
from boucle.config.times import HOUR_MS, iso_ms, local_days, parse_time
from boucle.flows.cli.app import app
from boucle.operators.decode import Feedback
from boucle.operators.rate_cap import SiteRateCap
from boucle.operators.themes import THEME_COLUMNS, ThemeDetector, ThemeWindows
from boucle.operators.windows import SCORE_COLUMNS, SiteWindows, WindowSpec

DAY_S = 86400
REGISTRY = """
[[hot_alerts.rules]]
name = "detractor"
severity = "medium"
all = [{ score = "nps", max = 6 }]
[[regions]]
id = "east"
name = "East Coast"
timezone = "America/New_York"

[[regions]]
id = "asia"
name = "Asia"

[[sites]]
id = "ny-1"
region = "east"
country = "US"
language = "en"

[[sites]]
id = "tokyo-1"
region = "asia"
country = "JP"
language = "en"

[[sites]]
id = "utc-1"
region = "east"
country = "US"
timezone = "UTC"
"""
# 22:00 and 01:00 in New York across midnight; 00:30 and 23:30 of the 25-hour 1 November 2026.
TIMES = ["2026-11-03T03:00:00Z", "2026-11-03T06:00:00Z", "2026-11-01T04:30:00Z", "2026-11-02T04:30:00Z"]


def event(site: str, at: str, n: int = 0) -> Feedback:
    return Feedback(f"e{n}", parse_time(at), site, "", "", {"nps": 9}, {}, "", "", {}, 0, "")


def daily_rows(zone: str) -> list[dict]:
    spec = WindowSpec([HOUR_MS, 24 * HOUR_MS], lateness_ms=0, scales={"nps": (10, 6, 9)}, zone_of={"s": zone})
    windows = SiteWindows(spec)
    closed = windows.add([event("s", at, i) for i, at in enumerate(sorted(TIMES))]) + windows.close(2**62)
    rows = [dict(zip(SCORE_COLUMNS, r)) for r in closed if r[3] == DAY_S]
    return sorted(rows, key=lambda r: r["window_start"])


def test_a_new_york_site_gets_its_daily_windows_on_its_local_day():
    rows = daily_rows("America/New_York")
    starts = [iso_ms(r["window_start"]) for r in rows]
    # Local midnight: 04:00Z under daylight saving (EDT), 05:00Z after the clocks went back (EST).
    assert starts == ["2026-11-01T04:00:00.000Z", "2026-11-02T05:00:00.000Z", "2026-11-03T05:00:00.000Z"]
    assert [r["n"] for r in rows] == [2, 1, 1]  # 1 November lasted 25 hours: 00:30 and 23:30 are one day
    assert [r["day"] for r in rows] == [parse_time(f"2026-11-0{d}T00:00:00Z") // (24 * HOUR_MS) for d in (1, 2, 3)]


def test_an_empty_zone_keeps_utc_days():
    assert [iso_ms(r["window_start"]) for r in daily_rows("")] == [
        "2026-11-01T00:00:00.000Z", "2026-11-02T00:00:00.000Z", "2026-11-03T00:00:00.000Z"]


def test_theme_windows_follow_the_site_s_local_day_too():
    site = Site(id="ny-1", region="east", language="en")
    detector = ThemeDetector({"waiting_time": {"en": ["long wait"]}})
    windows = ThemeWindows(site, detector, Themes(window="1d"), 0, zone="America/New_York")
    comments = [Feedback(f"c{i}", parse_time(at), "ny-1", "", "", {"nps": 3}, {}, "A long wait.", "en", {}, 0, "")
                for i, at in enumerate(sorted(TIMES))]
    rows = [dict(zip(THEME_COLUMNS, r)) for kind, r in windows.add(comments) + windows.flush() if kind == "row"]
    assert [(iso_ms(r["window_start"]), r["n"]) for r in rows] == [
        ("2026-11-01T04:00:00.000Z", 2), ("2026-11-02T05:00:00.000Z", 1), ("2026-11-03T05:00:00.000Z", 1)]


def test_the_hot_alert_rate_cap_counts_the_site_s_local_day():
    def held(calendar) -> tuple[list[bool], list[str]]:
        cap = SiteRateCap(RateCap(per_site_per_day=1), lateness_ms=0)
        cap.calendar = calendar
        alerts = [{"alert_id": f"a{i}", "severity": "medium", "evidence": {"rules": ["detractor"]}, "message": "m"}
                  for i in range(3)]
        # 22:00 and 22:30 on 2 November in New York, then 01:00 on the 3rd: 03:00Z, 03:30Z, 06:00Z.
        times = [parse_time(t) for t in ("2026-11-03T03:00:00Z", "2026-11-03T03:30:00Z", "2026-11-03T06:00:00Z")]
        admitted = [cap.admit(a, t) for a, t in zip(alerts, times)]
        return admitted, [d["evidence"]["day"] for d in cap.due(None, ("ny-1", "east", "", "", "en", "NY"))]

    assert held(local_days("America/New_York")) == ([True, False, True], ["2026-11-02"])
    assert held(local_days("")) == ([True, False, False], ["2026-11-03"])  # UTC: one day, two held


def test_zones_come_from_the_site_its_region_or_its_country():
    settings = settings_from_dict({"regions": [{"id": "east", "timezone": "America/New_York"}, {"id": "eu"}],
                                   "sites": [{"id": "a", "region": "east"}, {"id": "b", "region": "eu", "country": "DE"},
                                             {"id": "c", "region": "eu", "country": "US"},
                                             {"id": "d", "region": "east", "timezone": "Asia/Tokyo"}]})
    assert settings.site_zones() == {"a": "America/New_York", "b": "Europe/Berlin", "c": "", "d": "Asia/Tokyo"}


def test_the_warehouse_days_are_each_sites_local_day(workspace):
    config, events = workspace / "network.toml", workspace / "feedback.jsonl"
    config.write_text(REGISTRY)
    sites = ("ny-1", "tokyo-1", "utc-1")
    events.write_bytes(b"".join(
        orjson.dumps({"event_id": f"{site}-{i}", "occurred_at": at, "site_id": site, "scores": {"nps": 1}}) + b"\n"
        for site in sites for i, at in enumerate(TIMES)))
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "replay", str(events), "--no-progress"])
    assert result.exit_code == 0, result.output

    def query(sql: str) -> list[dict]:
        out = runner.invoke(app, ["--config", str(config), "query", sql, "--format", "json"])
        assert out.exit_code == 0, out.output
        return [json.loads(line) for line in out.output.splitlines()]

    daily = query("SELECT site_id, toString(day) AS day, n FROM site_attribute_daily FINAL "
                  "WHERE attribute = 'nps' ORDER BY site_id, day")
    by_site = {s: [(r["day"], r["n"]) for r in daily if r["site_id"] == s] for s in sites}
    assert by_site["ny-1"] == [("2026-11-01", 2), ("2026-11-02", 1), ("2026-11-03", 1)]
    assert by_site["utc-1"] == [("2026-11-01", 1), ("2026-11-02", 1), ("2026-11-03", 2)]
    # Tokyo (its country's one zone, UTC+9): 03:00Z and 06:00Z are both the afternoon of 3 November.
    assert by_site["tokyo-1"] == [("2026-11-01", 1), ("2026-11-02", 1), ("2026-11-03", 2)]
    alert_days = query("SELECT toString(day) AS day, hot_alerts FROM v_site_alert_days WHERE site_id = 'ny-1' ORDER BY day")
    assert [(r["day"], r["hot_alerts"]) for r in alert_days] == [("2026-11-01", 2), ("2026-11-02", 1), ("2026-11-03", 1)]
    raw = query("SELECT site_id, toString(day) AS day, count() AS n FROM feedback FINAL "
                "WHERE site_id = 'ny-1' GROUP BY site_id, day ORDER BY day")
    assert [(r["day"], r["n"]) for r in raw] == [("2026-11-01", 2), ("2026-11-02", 1), ("2026-11-03", 1)]
