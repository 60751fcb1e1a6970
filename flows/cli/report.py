"""``boucle report``: one self-contained HTML file built on the BI views.

Sections (each a plotly figure but the last; plotly.js is inlined once, so the file opens offline):

1. ``headline`` — the headline score over time per region: the network's ``importance_target``
   when it has responses, else its first score question (NPS, CSAT, CES...); a rolling line per
   region (7 days, longer on a thin network) from ``v_region_daily``, a point drawn only on at least
   ``min_n`` responses;
2. ``peers`` — site x question heatmap coloured by the robust z against the region's sites
   (``v_peer_comparison``), the score written in each cell; a cell on fewer than ``min_n`` responses
   is greyed and shows its n;
3. ``leaderboard`` — headline progress against the previous period per site (``v_leaderboard``);
   the default period is widened (30 → 90 d) when the median site has fewer than ``min_n``
   responses in it, and the report says so;
4. ``alerts`` — alerts opened per day by kind, a timeline of the attribute alerts and regional
   incidents (``v_alerts``), and hot alerts per site and day for the busiest sites, published and
   held by the rate cap (``v_site_alert_days``);
5. ``importance`` — attribute importance for the headline from ``attribute_importance`` when that
   table has rows (a region whose latest status is ``not_enough_data`` is named as such), else a
   labelled stand-in: the correlation of each attribute with the headline per region (``corr()``);
6. ``watched`` — what the attribute alerts watch (``v_series_status``);
7. ``cases`` — the loop's KPIs over the cases opened in the period (``cases``): share contacted,
   median time to first contact, untreated, pending.

Every word, date and number is in the report's language (``config/locales``); regions and sites
sort as people read them (:func:`boucle.config.locales.collation_key`).

>>> parse_period("30d"), parse_period("2w"), parse_period(14)
(30, 14, 14)
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boucle.config.locales import collation_key, format_date, format_number, is_language_code, label_in, texts
from boucle.config.settings import parse_duration
from boucle.sinks.safe_text import html_text

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from boucle.config.settings import Settings

__all__ = ["DEFAULT_PERIOD", "MIN_N", "ReportError", "SECTIONS", "build_report", "collect", "parse_period",
           "screenshot", "write_report"]

SECTIONS = ("headline", "peers", "leaderboard", "alerts", "importance", "watched", "cases")
FIGURE_SECTIONS = SECTIONS[:-1]  # ``cases`` is a row of figures in HTML, not a plot
DEFAULT_PERIOD = 30
MIN_N = 5  # responses under which a point, a cell or a site's period says too little to be drawn
ROLLING_DAYS = (7, 14, 28, 91)  # the headline line's window: the shortest most points can stand on
SCORE_NAMES = {"nps": "NPS", "csat": "CSAT", "ces": "CES"}  # short names a title can carry

SEVERITY_COLOURS = {"low": "#9ecae1", "medium": "#fdae6b", "high": "#e6550d", "critical": "#a50f15"}
OUTER_LOOP = ("attribute", "regional_incident")  # the timeline's kinds: what a site or region does, not SLAs


class ReportError(ValueError):
    """The report cannot be built (bad option, empty warehouse); one line for a human."""


def parse_period(value: Any) -> int:
    """A period such as ``"30d"`` or ``"2w"`` as whole days."""
    try:
        delta = parse_duration(value if not isinstance(value, int) else timedelta(days=value))
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    days = delta.total_seconds() / 86400
    if days < 1 or days != int(days):
        raise ReportError(f"the period must be whole days, e.g. 7d or 30d, got {value!r}")
    return int(days)


@dataclass
class ReportData:
    region: str | None
    period_days: int
    period_start: date
    period_end: date
    lang: str
    labels: dict[str, str]  # question -> label
    region_names: dict[str, str]
    sites: int
    responses: int
    headline: str = "nps"  # the question the headline, leaderboard and importance stand for
    headline_is_target: bool = True  # the importance target itself (else the first score question with data)
    target: str = "nps"
    min_n: int = MIN_N
    compare_days: int = DEFAULT_PERIOD  # period of peers and leaderboard (widened from period_days if thin)
    site_median: float = math.nan  # responses of the median site in period_days (headline question)
    rolling_days: int = 7
    series: list[dict] = field(default_factory=list)  # headline per region and day: n, total, top_n, bottom_n
    peers: list[dict] = field(default_factory=list)
    leaderboard: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    site_days: list[dict] = field(default_factory=list)  # hot alerts per site and day: published, held
    importance: list[dict] = field(default_factory=list)
    importance_is_standin: bool = True
    importance_unknown: list[str] = field(default_factory=list)  # regions whose importance is not known yet
    watched: list[dict] = field(default_factory=list)  # per question: watched, warming up, median needs
    cases: dict = field(default_factory=dict)  # the loop's KPIs over the cases opened in the period

    @property
    def widened(self) -> bool:
        return self.compare_days != self.period_days

    def region_name(self, region: str) -> str:
        return self.region_names.get(region) or region

    def name(self, question: str) -> str:
        """A question's short name for titles: NPS, CSAT, CES, else its label."""
        return SCORE_NAMES.get(question) or self.labels.get(question, question)


def _rows(client: Client, sql: str, **params: Any) -> list[dict]:
    from boucle.sinks.clickhouse.client import client_lock

    with client_lock(client):
        result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


WHERE = "({r:String} = '' OR region = {r:String})"


def collect(client: Client, database: str, *, region: str | None, period_days: int = DEFAULT_PERIOD,
            lang: str = "en", target: str = "nps", min_n: int = MIN_N, widen: bool = False,
            labels: dict[str, str] | None = None) -> ReportData:
    """Read everything the report shows from the views of ``database``.

    ``target``: the question the headline stands for when it has responses; ``widen``: the period may
    grow to a longer listed one when the median site has fewer than ``min_n`` responses in it;
    ``labels``: question labels in the report's language (the warehouse's French/English otherwise).
    """
    db = database
    anchor = _rows(client, f"SELECT max(day) AS d, count() AS n FROM {db}.site_attribute_daily")[0]
    if not anchor["n"]:
        raise ReportError("the warehouse has no daily scores yet: run `boucle run` first")
    end: date = anchor["d"]
    start = end - timedelta(days=period_days - 1)
    if region and not _rows(client, f"SELECT 1 FROM {db}.sites FINAL WHERE region = {{r:String}} LIMIT 1", r=region):
        raise ReportError(f"no site of region {region!r} in the warehouse (see the sites table)")
    known = sorted(r["period_days"] for r in _rows(client, f"SELECT DISTINCT period_days FROM {db}.periods"))
    if period_days not in known:  # the views compare the periods listed there; a report only reads
        listed = ", ".join(f"{p}d" for p in known) or "none"
        raise ReportError(
            f"{period_days}d is not a comparison period of the warehouse ({listed}); add it once with"
            f' `boucle query --write "INSERT INTO periods VALUES ({period_days})"`'
        )
    params = {"r": region or "", "p": period_days, "start": start, "end": end}
    questions = _questions(client, db, "fr" if lang.lower().startswith("fr") else "en")
    shown = {q: (labels or {}).get(q) or label for q, (label, _) in questions.items()}
    region_names = {r["region"]: r["name"] for r in _rows(
        client, f"SELECT region, any(region_name) AS name FROM {db}.sites FINAL GROUP BY region")}
    totals = _rows(client, f"SELECT uniqExact(site_id) AS sites, count() AS responses FROM {db}.feedback FINAL"
                           f" WHERE toDate(occurred_at) BETWEEN {{start:Date}} AND {{end:Date}} AND {WHERE}",
                   **params)[0]
    data = ReportData(region, period_days, start, end, lang, shown, region_names, totals["sites"], totals["responses"],
                      target=target, min_n=min_n, compare_days=period_days)
    data.headline, data.headline_is_target = _headline(client, db, target, questions, params)
    medians = _site_medians(client, db, data.headline, [p for p in known if p >= period_days], params)
    data.site_median = medians.get(period_days, math.nan)
    if widen:
        data.compare_days = _compare_days(medians, period_days, min_n)
    params.update(p=data.compare_days, h=data.headline)
    data.series = _rows(client, f"SELECT day, region, n, mean * n AS total, top_n, bottom_n FROM {db}.v_region_daily"
                                f" WHERE attribute = {{h:String}} AND {WHERE} ORDER BY region, day", **params)
    data.rolling_days = _rolling_days(data.series, min_n)
    data.peers = _rows(client, f"SELECT site_id, site_name, region, attribute, score, n, robust_z, region_peer_median,"
                               f" region_rank, region_sites FROM {db}.v_peer_comparison"
                               f" WHERE period_days = {{p:UInt32}} AND {WHERE}", **params)
    data.leaderboard = _rows(client, f"SELECT site_id, site_name, region, score, previous_score, delta, progress_rank,"
                                     f" level_rank, region_sites, n, prev_n FROM {db}.v_leaderboard"
                                     f" WHERE period_days = {{p:UInt32}} AND attribute = {{h:String}} AND {WHERE}"
                                     f" ORDER BY delta", **params)
    data.alerts = _rows(client, f"SELECT alert_id, kind, status, severity, site_id, site_name, region, attribute, message,"
                                f" first_event_time FROM {db}.v_alerts WHERE toDate(first_event_time) BETWEEN"
                                f" {{start:Date}} AND {{end:Date}} AND {WHERE} ORDER BY first_event_time", **params)
    data.site_days = _rows(client, f"SELECT d.day AS day, d.site_id AS site_id, if(s.name = '', d.site_id, s.name)"
                                   f" AS site_name, d.hot_alerts AS hot_alerts, d.hot_held AS hot_held"
                                   f" FROM {db}.v_site_alert_days AS d LEFT JOIN (SELECT site_id, name FROM"
                                   f" {db}.sites FINAL) AS s ON s.site_id = d.site_id WHERE d.day BETWEEN"
                                   f" {{start:Date}} AND {{end:Date}} AND ({{r:String}} = '' OR d.region = {{r:String}})"
                                   f" ORDER BY d.day", **params)
    _collect_importance(client, db, data, params)
    data.watched = _rows(client, f"SELECT question, countIf(status = 'watched') AS watched,"
                                 f" countIf(status != 'watched') AS warming, medianIf(needs, status != 'watched')"
                                 f" AS needs FROM {db}.v_series_status WHERE {WHERE} GROUP BY question", **params)
    data.cases = _case_kpis(client, db, params)
    return data


def _questions(client: Client, db: str, label_language: str) -> dict[str, tuple[str, bool]]:
    """``{question: (label, is_score)}``, scores first (NPS, CSAT, CES, then the others), then attributes."""
    col = "label_fr" if label_language == "fr" else "label_en"
    return {r["attribute"]: (r["label"] or r["attribute"], bool(r["is_score"])) for r in _rows(
        client, f"SELECT attribute, {col} AS label, is_score FROM {db}.questions FINAL"
                f" ORDER BY is_score DESC, indexOf(['nps', 'csat', 'ces'], attribute) = 0,"
                f" indexOf(['nps', 'csat', 'ces'], attribute), label")}


def _headline(client: Client, db: str, target: str, questions: dict[str, tuple[str, bool]],
              params: dict) -> tuple[str, bool]:
    """The headline question and whether it is ``target``: the target when it has responses in scope,
    else the first score question that has, else the first question that has."""
    answered = {r["attribute"] for r in _rows(
        client, f"SELECT DISTINCT attribute FROM {db}.site_attribute_daily WHERE {WHERE}", **params)}
    if target in answered:
        return target, True
    ordered = [q for q, (_, is_score) in questions.items() if is_score] + list(questions) + sorted(answered)
    return next((q for q in ordered if q in answered), target), False


def _site_medians(client: Client, db: str, question: str, lengths: list[int], params: dict) -> dict[int, float]:
    """Responses to ``question`` of the median site in each period length, over the sites that
    answered in the longest one."""
    if not lengths:
        return {}
    rows = _rows(client, f"SELECT p, quantileExact(0.5)(s) AS median FROM (SELECT site_id, p,"
                         f" sumIf(n, day > {{end:Date}} - p) AS s FROM {db}.site_attribute_daily FINAL"
                         f" ARRAY JOIN {{ps:Array(UInt32)}} AS p WHERE attribute = {{h:String}}"
                         f" AND day > {{end:Date}} - {{longest:UInt32}} AND {WHERE} GROUP BY site_id, p) GROUP BY p",
                 **{**params, "h": question, "ps": lengths, "longest": max(lengths)})
    return {int(r["p"]): float(r["median"]) for r in rows}


def _compare_days(medians: dict[int, float], period_days: int, min_n: int) -> int:
    """The shortest listed period from ``period_days`` on where the median site has ``min_n``
    responses, else the longest listed.

    >>> _compare_days({30: 2.0, 90: 6.0}, 30, 5), _compare_days({30: 2.0, 90: 3.0}, 30, 5), _compare_days({30: 9.0}, 30, 5)
    (90, 90, 30)
    """
    enough = [p for p in sorted(medians) if medians[p] >= min_n]
    return enough[0] if enough else max(medians, default=period_days)


def _rolling(rows: list[dict], days: int) -> list[dict]:
    """Per day of ``rows`` (one region, by day): the sums of the ``days`` days up to it."""
    out = []
    for i, row in enumerate(rows):
        window = [r for r in rows[max(0, i - days + 1): i + 1] if (row["day"] - r["day"]).days < days]
        out.append({"day": row["day"], **{k: sum(r[k] for r in window) for k in ("n", "total", "top_n", "bottom_n")}})
    return out


def _rolling_days(series: list[dict], min_n: int, share: float = 0.5) -> int:
    """The shortest window of :data:`ROLLING_DAYS` on which at least ``share`` of the region-days
    reach ``min_n`` responses: a week on a busy network, a month or a quarter on a thin one."""
    by_region = _by_region(series)
    for days in ROLLING_DAYS:
        points = [p for rows in by_region.values() for p in _rolling(rows, days)]
        if points and sum(p["n"] >= min_n for p in points) >= share * len(points):
            return days
    return ROLLING_DAYS[-1]


def _by_region(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(row["region"], []).append(row)
    return out


def _collect_importance(client: Client, db: str, data: ReportData, params: dict) -> None:
    """The headline's importance weights, the regions not known yet, or the corr() stand-in."""
    has_model = _rows(client, "SELECT count() AS n FROM system.tables WHERE database = {db:String}"
                              " AND name = 'attribute_importance'", db=db)[0]["n"]
    if has_model:
        latest = _rows(client, f"SELECT region, attribute, argMax(weight, updated_at) AS weight,"
                               f" argMax(status, updated_at) AS status FROM {db}.attribute_importance"
                               f" WHERE target = {{h:String}} AND {WHERE} GROUP BY region, attribute", **params)
        data.importance_unknown = sorted({r["region"] for r in latest if r["status"] == "not_enough_data"},
                                         key=lambda r: collation_key(data.region_name(r)))
        data.importance = [r for r in latest if r["status"] != "not_enough_data"]
    data.importance_is_standin = not data.importance and not data.importance_unknown
    if data.importance_is_standin:
        data.importance = _rows(
            client,
            f"SELECT region, kv.1 AS attribute, corr(toFloat64(kv.2), toFloat64(mapUpdate(scores, attributes)[{{h:String}}]))"
            f" AS weight, count() AS n FROM {db}.feedback FINAL"
            f" ARRAY JOIN arrayZip(mapKeys(attributes), mapValues(attributes)) AS kv"
            f" WHERE mapContains(mapUpdate(scores, attributes), {{h:String}}) AND kv.1 != {{h:String}}"
            f" AND toDate(occurred_at) BETWEEN {{start:Date}} AND {{end:Date}}"
            f" AND {WHERE} GROUP BY region, attribute HAVING n >= 20 AND NOT isNaN(weight)", **params)


def _case_kpis(client: Client, db: str, params: dict) -> dict:
    """The loop's KPIs over the hot-alert cases opened in the period (definitions: v0005_cases.sql)."""
    # Aliases unlike the columns: ClickHouse would read `contacted` inside medianIf as the alias.
    names = ("cases", "contacted", "median_hours", "decided", "untreated", "pending", "history")
    row = _rows(client, f"""SELECT count() AS k0, countIf(contacted = 1) AS k1,
        medianIf(dateDiff('second', opened_at, first_contact_at) / 3600, contacted = 1) AS k2,
        countIf(sla_decided = 1) AS k3, countIf(untreated = 1) AS k4,
        countIf(sla_decided = 0 AND outcome_unknown = 0 AND first_action_at = toDateTime64(0, 3, 'UTC')) AS k5,
        countIf(outcome_unknown = 1) AS k6
        FROM {db}.cases FINAL WHERE toDate(opened_at) BETWEEN {{start:Date}} AND {{end:Date}} AND {WHERE}""",
                **params)[0]
    return dict(zip(names, row.values()))


# ---- words, numbers and dates in the report's language ---------------------------------------

def _num(value: float | None, data: ReportData, decimals: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format_number(value, data.lang, decimals)


def _score(value: float | None, question: str, data: ReportData) -> str:
    """A score as the report writes it: NPS in whole points, a mean rating with two decimals."""
    return _num(value, data, 0 if question == "nps" else 2)


def _day(day: date, data: ReportData) -> str:
    return format_date(day, data.lang)


def _date_axis(first: date, last: date, data: ReportData, ticks: int = 8) -> dict:
    """Date ticks written by Babel (plotly.js would write English month names)."""
    span = max(1, (last - first).days)
    step = max(1, math.ceil(span / ticks))
    days = [first + timedelta(days=i) for i in range(0, span + 1, step)]
    pattern = "d MMM" if span <= 200 else "MMM yyyy"
    return dict(tickmode="array", tickvals=days, ticktext=[format_date(d, data.lang, pattern) for d in days])


def _word(t: dict, group: str, key: str) -> str:
    """A kind, severity or status in the report's language (the key itself when none is known)."""
    return t.get(group, {}).get(key, key)


# ---- figures ------------------------------------------------------------------------------------

def _layout(fig, height: int, **kwargs: Any) -> None:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                      font=dict(family="system-ui, Segoe UI, Helvetica, Arial, sans-serif", size=13), **kwargs)


def _headline_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    name = data.name(data.headline)
    by_region = _by_region(data.series)
    for region in sorted(by_region, key=lambda r: collation_key(data.region_name(r))):
        points = _rolling(by_region[region], data.rolling_days)
        values = [_value(p, data.headline) if p["n"] >= data.min_n else None for p in points]  # too thin: a gap
        fig.add_trace(go.Scatter(
            x=[p["day"] for p in points], y=values, mode="lines", name=data.region_name(region), connectgaps=False,
            customdata=[[_day(p["day"], data), _score(v, data.headline, data), _num(p["n"], data)]
                        for p, v in zip(points, values)],
            hovertemplate=f"%{{customdata[0]}}: {html_text(name)} %{{customdata[1]}} (n = %{{customdata[2]}})"
                          "<extra>%{fullData.name}</extra>"))
    fig.add_vrect(x0=data.period_start, x1=data.period_end + timedelta(days=1), fillcolor="#888", opacity=0.08,
                  line_width=0)
    days = [r["day"] for r in data.series]
    _layout(fig, 420, yaxis_title=name, xaxis=dict(title=t["day"], **_date_axis(min(days), max(days), data)),
            legend=dict(orientation="h", y=-0.2))
    return fig


def _value(point: dict, question: str) -> float:
    if question == "nps":
        return round(100 * (point["top_n"] - point["bottom_n"]) / point["n"], 1)
    return round(point["total"] / point["n"], 2)


def _peers_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    questions = [q for q in data.labels if any(r["attribute"] == q for r in data.peers)]
    questions += sorted({r["attribute"] for r in data.peers} - set(questions))
    sites = sorted({(data.region_name(r["region"]), r["site_name"], r["site_id"]) for r in data.peers},
                   key=lambda s: (collation_key(s[0]), collation_key(s[1]), s[2]))
    cell = {(r["site_id"], r["attribute"]): r for r in data.peers}
    z, text, hover, thin, thin_text = [], [], [], [], []
    for _region, name, site in sites:
        rows = [cell.get((site, q)) for q in questions]
        z.append([None if r is None or r["n"] < data.min_n or r["robust_z"] is None
                  else max(-3.0, min(3.0, r["robust_z"])) for r in rows])
        text.append(["" if r is None or r["n"] < data.min_n else _score(r["score"], q, data)
                     for r, q in zip(rows, questions)])
        hover.append(["" if r is None else _peer_hover(data, t, name, q, r) for r, q in zip(rows, questions)])
        thin.append([1 if r is not None and r["n"] < data.min_n else None for r in rows])
        thin_text.append([f"n={r['n']}" if r is not None and r["n"] < data.min_n else "" for r in rows])
    y = [f"{name} ({region_name})" if data.region is None else name for region_name, name, _ in sites]
    x = [data.labels.get(q, q) for q in questions]
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=y, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", colorscale="RdBu", zmid=0, zmin=-3, zmax=3,
        colorbar=dict(title="z"), xgap=1, ygap=1,
    ))
    if any(v for row in thin for v in row):  # grey cells: too few responses to compare
        fig.add_trace(go.Heatmap(z=thin, x=x, y=y, text=thin_text, texttemplate="%{text}", customdata=hover,
                                 hovertemplate="%{customdata}<extra></extra>", colorscale=[[0, "#d9d9d9"], [1, "#d9d9d9"]],
                                 showscale=False, xgap=1, ygap=1, textfont=dict(color="#777")))
    _layout(fig, max(320, 24 * len(y) + 120), xaxis=dict(side="top"), yaxis=dict(autorange="reversed"))
    return fig


def _peer_hover(data: ReportData, t: dict, site: str, question: str, r: dict) -> str:
    lines = [f"{html_text(site)} · {html_text(data.labels.get(question, question))}",
             f"{t['score']} {_score(r['score'], question, data)} (n = {_num(r['n'], data)})"]
    if r["n"] < data.min_n:
        lines.append(t["thin_cell"].format(min_n=data.min_n))
    else:
        lines += [f"{t['peer_median']} {_score(r['region_peer_median'], question, data)}",
                  f"{t['rank']} {r['region_rank']}/{r['region_sites']}"]
    return "<br>".join(lines)


def _leaderboard_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    rows = data.leaderboard
    name = data.name(data.headline)
    labels = [r["site_name"] if data.region else f"{r['site_name']} ({data.region_name(r['region'])})" for r in rows]
    decimals = 1 if data.headline == "nps" else 2
    fig = go.Figure(go.Bar(
        x=[round(r["delta"], decimals) for r in rows], y=labels, orientation="h",
        marker_color=["#1a9850" if r["delta"] >= 0 else "#d73027" for r in rows],
        customdata=[[_num(r["previous_score"], data, decimals), _num(r["score"], data, decimals),
                     _num(r["delta"], data, decimals), r["progress_rank"], r["level_rank"], r["region_sites"],
                     _num(r["prev_n"], data), _num(r["n"], data)] for r in rows],
        hovertemplate=f"%{{y}}<br>{html_text(name)} %{{customdata[0]}} → %{{customdata[1]}} (%{{customdata[2]}})"
                      f" · n = %{{customdata[6]}} → %{{customdata[7]}}<br>{t['progress_rank']} %{{customdata[3]}}"
                      f"/%{{customdata[5]}} · {t['level_rank']} %{{customdata[4]}}<extra></extra>",
    ))
    _layout(fig, max(320, 22 * len(rows) + 100), xaxis_title=t["delta"].format(question=name))
    return fig


def _alerts_figures(data: ReportData, t: dict):
    import plotly.graph_objects as go

    counts: dict[str, dict[date, int]] = {}
    for a in data.alerts:
        day = a["first_event_time"].date()
        counts.setdefault(a["kind"], {}).setdefault(day, 0)
        counts[a["kind"]][day] += 1
    per_day = go.Figure([go.Bar(x=sorted(c), y=[c[d] for d in sorted(c)], name=_word(t, "kinds", kind),
                                customdata=[_day(d, data) for d in sorted(c)],
                                hovertemplate="%{customdata}: %{y}<extra>%{fullData.name}</extra>")
                         for kind, c in sorted(counts.items())])
    _layout(per_day, 320, barmode="stack", yaxis_title=t["alerts_axis"], legend=dict(orientation="h", y=-0.25),
            xaxis=_date_axis(data.period_start, data.period_end, data))
    figures = [per_day]
    outer = [a for a in data.alerts if a["kind"] in OUTER_LOOP]
    if outer:
        figures.append(_timeline_figure(data, t, outer))
    if data.site_days:
        figures.append(_site_days_figure(data, t))
    return figures


def _timeline_figure(data: ReportData, t: dict, outer: list[dict]):
    """Attribute alerts (a site's row) and regional incidents (the region's row) on a timeline."""
    import plotly.graph_objects as go

    def row(a: dict) -> str:
        return html_text(a["site_name"] or data.region_name(a["region"]))

    timeline = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():
        chosen = [a for a in outer if a["severity"] == severity]
        if chosen:
            timeline.add_trace(go.Scatter(
                x=[a["first_event_time"] for a in chosen], y=[row(a) for a in chosen],
                mode="markers", name=_word(t, "severities", severity),
                marker=dict(color=colour, size=10, line=dict(width=1, color="#333")),
                # A message may quote a customer: escaped, or plotly would render its <a href> and <b>.
                customdata=[f"{format_date(a['first_event_time'], data.lang, 'd MMM')} {a['first_event_time']:%H:%M}"
                            for a in chosen],
                text=[html_text(f"{_word(t, 'kinds', a['kind'])} · {data.labels.get(a['attribute'], a['attribute'])}"
                                f" · {_word(t, 'statuses', a['status'])}: {a['message']}") for a in chosen],
                hovertemplate="%{customdata} · %{y}<br>%{text}<extra></extra>",
            ))
    _layout(timeline, max(300, 18 * len({row(a) for a in outer}) + 120), legend=dict(orientation="h", y=-0.2),
            xaxis=_date_axis(data.period_start, data.period_end, data))
    return timeline


def _site_days_figure(data: ReportData, t: dict, top: int = 20):
    """Hot alerts per site and day (published + held) for the ``top`` sites with the most."""
    import plotly.graph_objects as go

    totals: dict[str, int] = {}
    for r in data.site_days:
        totals[r["site_id"]] = totals.get(r["site_id"], 0) + r["hot_alerts"] + r["hot_held"]
    sites = sorted(totals, key=lambda s: (-totals[s], s))[:top]
    days = sorted({r["day"] for r in data.site_days})
    cell = {(r["site_id"], r["day"]): r for r in data.site_days}
    names = {r["site_id"]: html_text(r["site_name"]) for r in data.site_days}
    z = [[(cell[s, d]["hot_alerts"] + cell[s, d]["hot_held"]) if (s, d) in cell else None for d in days] for s in sites]
    text = [[f"{cell[s, d]['hot_alerts']} + {cell[s, d]['hot_held']}" if (s, d) in cell else "" for d in days]
            for s in sites]
    fig = go.Figure(go.Heatmap(x=days, y=[names[s] for s in sites], z=z, text=text, colorscale="Reds",
                               customdata=[[_day(d, data) for d in days] for _ in sites],
                               hovertemplate="%{y} · %{customdata}: %{z} (%{text})<extra></extra>",
                               colorbar=dict(title=t["alerts_axis"])))
    _layout(fig, max(300, 22 * len(sites) + 120), yaxis=dict(autorange="reversed"),
            xaxis=_date_axis(data.period_start, data.period_end, data))
    return fig


def _importance_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    regions = sorted({r["region"] for r in data.importance}, key=lambda r: collation_key(data.region_name(r)))
    attributes = sorted({r["attribute"] for r in data.importance},
                        key=lambda a: -sum(r["weight"] for r in data.importance if r["attribute"] == a))
    weight = {(r["region"], r["attribute"]): r["weight"] for r in data.importance}
    borrowed = {r["region"] for r in data.importance if r.get("status") == "network"}

    def name(region: str) -> str:
        shown = data.region_name(region)
        return f"{shown} ({t['importance_network']})" if region in borrowed else shown

    fig = go.Figure([
        go.Bar(y=[data.labels.get(a, a) for a in attributes],
               x=[round(weight.get((region, a), math.nan), 3) for a in attributes], orientation="h", name=name(region),
               customdata=[_num(weight.get((region, a), math.nan), data, 2) for a in attributes],
               hovertemplate="%{y}: %{customdata}<extra>%{fullData.name}</extra>")
        for region in regions
    ])
    _layout(fig, max(320, 30 * len(attributes) * max(1, min(len(regions), 3)) + 100), barmode="group",
            xaxis_title=t["weight"], yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.15))
    return fig


def _watched_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    order = {q: i for i, q in enumerate(data.labels)}
    rows = sorted(data.watched, key=lambda r: order.get(r["question"], len(order)))
    labels = [data.labels.get(r["question"], r["question"]) for r in rows]
    fig = go.Figure([
        go.Bar(y=labels, x=[r["watched"] for r in rows], orientation="h", name=t["series_watched"],
               marker_color="#2a9d8f"),
        go.Bar(y=labels, x=[r["warming"] for r in rows], orientation="h", name=t["series_warming"],
               marker_color="#e9c46a"),
    ])
    _layout(fig, max(280, 28 * len(rows) + 100), barmode="stack", xaxis_title=t["series_axis"],
            yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.15))
    return fig


# ---- help texts ---------------------------------------------------------------------------------

def _watched_help(data: ReportData, t: dict) -> str:
    watched = sum(r["watched"] for r in data.watched)
    total = watched + sum(r["warming"] for r in data.watched)
    needs = [r["needs"] for r in data.watched if r["warming"] and not math.isnan(r["needs"])]
    return t["watched_help"].format(watched=_num(watched, data), total=_num(total, data),
                                    needs=_num(sorted(needs)[len(needs) // 2], data) if needs else "0")


def _headline_help(data: ReportData, t: dict) -> str:
    name = data.name(data.headline)
    why = (t["headline_target"] if data.headline_is_target else t["headline_fallback"]).format(
        question=name, target=data.name(data.target))
    how = t["how_nps"] if data.headline == "nps" else t["how_mean"]
    return " ".join([why, t["headline_help"].format(days=data.rolling_days, question=name, how=how, min_n=data.min_n)])


def _period_note(data: ReportData, t: dict) -> str:
    """Which period peers and leaderboard compare, and why when it was widened."""
    if not data.widened:
        return ""
    return t["widened"].format(to=data.compare_days, min_n=data.min_n, from_=data.period_days,
                               median=_num(data.site_median, data))


def _importance_help(data: ReportData, t: dict) -> str:
    name = data.name(data.headline)
    text = (t["importance_standin"] if data.importance_is_standin else t["importance_model"]).format(question=name)
    if data.importance_unknown:
        text += " " + t["importance_unknown"].format(
            regions=", ".join(data.region_name(r) for r in data.importance_unknown))
    return text


def _cases_html(data: ReportData, t: dict) -> str:
    """The loop's KPIs as a row of figures (one number, one label each)."""
    c = data.cases
    if not c.get("cases"):
        return f'<p class="empty">{html.escape(t["no_data"])}</p>'
    share = c["contacted"] / c["cases"]
    hours = c["median_hours"]
    tiles = [
        (_num(c["cases"], data), t["cases_total"]),
        (f"{_num(100 * share, data, 1)} %", t["cases_contacted"].format(n=_num(c["contacted"], data))),
        ("–" if not c["contacted"] or math.isnan(hours) else f"{_num(hours, data, 1)} h", t["cases_first_contact"]),
        (_num(c["untreated"], data), t["cases_untreated"].format(decided=_num(c["decided"], data))),
        (_num(c["pending"], data), t["cases_pending"]),
    ]
    if c["history"]:
        tiles.append((_num(c["history"], data), t["cases_history"]))
    return '<div class="kpis">' + "".join(
        f'<div class="kpi"><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>'
        for value, label in tiles) + "</div>"


# ---- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d3557;color:#fff;padding:24px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;opacity:.85}main{max-width:1300px;margin:0 auto;padding:10px 30px 40px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:22px 0;padding:16px 22px}
section h2{margin:4px 0 4px;font-size:20px}.help{color:#555;margin:0 0 10px;font-size:14px}
.note{color:#8a5a00;background:#fff6e0;border-radius:4px;padding:4px 8px;margin:0 0 10px;font-size:14px}
.empty{color:#888;font-style:italic}
.kpis{display:flex;flex-wrap:wrap;gap:14px}.kpi{background:#f1f4f8;border-radius:6px;padding:10px 16px;min-width:150px}
.kpi b{display:block;font-size:24px}.kpi span{color:#555;font-size:13px}
"""


def _section(key: str, title: str, help_text: str, figures: list, t: dict, note: str = "", body: str = "") -> str:
    divs = body or "".join(
        fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}-{i}",
                    config={"displaylogo": False, "responsive": True})
        for i, fig in enumerate(figures)
    ) or f'<p class="empty">{html.escape(t["no_data"])}</p>'
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return (f'<section id="{key}"><h2>{html.escape(title)}</h2><p class="help">{html.escape(help_text)}</p>'
            f"{note_html}{divs}</section>")


def _subtitle(data: ReportData, t: dict) -> str:
    scope = data.region_name(data.region) if data.region else t["scope_all"]
    generated = datetime.now(timezone.utc)
    return (f"{scope} · {t['period']} {_day(data.period_start, data)} – {_day(data.period_end, data)}"
            f" ({data.period_days} d) · {_num(data.sites, data)} {t['sites_n']} · {_num(data.responses, data)}"
            f" {t['responses']} · {t['headline_is'].format(question=data.name(data.headline))}"
            f" · {t['generated']} {format_date(generated, data.lang)} {generated:%H:%M} UTC")


def build_report(data: ReportData) -> str:
    """The report as one HTML document (plotly.js inlined)."""
    from plotly.offline import get_plotlyjs

    t = texts("report", data.lang)
    name = data.name(data.headline)
    note = _period_note(data, t)
    compare = t["compared_over"].format(days=data.compare_days)
    body = [
        _section("headline", t["headline"].format(question=name), _headline_help(data, t),
                 [_headline_figure(data, t)] if data.series else [], t),
        _section("peers", t["peers"], f"{t['peers_help']} {t['peers_thin'].format(min_n=data.min_n)} {compare}",
                 [_peers_figure(data, t)] if data.peers else [], t, note),
        _section("leaderboard", t["leaderboard"].format(question=name), f"{t['leaderboard_help']} {compare}",
                 [_leaderboard_figure(data, t)] if data.leaderboard else [], t, note),
        _section("alerts", t["alerts"], t["alerts_help"], _alerts_figures(data, t) if data.alerts else [], t),
        _section("importance", t["importance"], _importance_help(data, t),
                 [_importance_figure(data, t)] if data.importance else [], t),
        _section("watched", t["watched"], _watched_help(data, t), [_watched_figure(data, t)] if data.watched else [], t),
        _section("cases", t["cases"], t["cases_help"], [], t, body=_cases_html(data, t)),
    ]
    meta = json.dumps({"sections": list(SECTIONS), "period_days": data.period_days, "region": data.region,
                       "compare_days": data.compare_days, "headline": data.headline, "min_n": data.min_n,
                       "lang": t["_language"]})
    return (
        f'<!DOCTYPE html><html lang="{html.escape(data.lang)}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(t['title'])}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        f'<script type="application/json" id="boucle-report">{meta}</script></head>'
        f"<body><header><h1>{html.escape(t['title'])}</h1><p>{html.escape(_subtitle(data, t))}</p></header>"
        f"<main>{''.join(body)}</main></body></html>"
    )


def question_labels(settings: Settings, lang: str) -> dict[str, str]:
    """Every question's label in ``lang`` from the config (``labels = {de = ...}``; English fallback)."""
    return {name: label_in(metric.labels_by_language(name), lang) for name, metric in settings.questions().items()}


def write_report(settings: Settings, out: Path, *, region: str | None = None, period: Any = None,
                 lang: str = "en", min_n: int = MIN_N) -> Path:
    """Build the report from the warehouse of ``settings`` and write it to ``out``.

    ``period`` None: 30 days, widened when the median site has fewer than ``min_n`` responses in it
    (a period given is kept as given). Read-only: a read-only session (a BI user works), no migration,
    no TTL, no dimension sync; a warehouse without the schema is one line saying to run ``boucle db migrate``.
    """
    from boucle.config.redact import redact_url
    from boucle.flows.cli.common import read_client
    from boucle.sinks.clickhouse.schema import check_schema

    if not is_language_code(lang):
        raise ReportError(f"--lang must be a language code such as en, fr, de, es, it or nl, got {lang!r}")
    if importlib.util.find_spec("plotly") is None:
        raise ReportError("the report draws with plotly, which is not installed: pip install 'boucle[report]'")
    if min_n < 1:
        raise ReportError(f"--min-n must be at least 1, got {min_n}")
    period_days = DEFAULT_PERIOD if period is None else parse_period(period)
    warehouse = settings.warehouse
    client = read_client(settings)
    check_schema(client, warehouse.database, redact_url(warehouse.url or warehouse.path))
    data = collect(client, warehouse.database, region=region, period_days=period_days, lang=lang,
                   target=settings.attribute_alerts.importance_target, min_n=min_n, widen=period is None,
                   labels=question_labels(settings, lang))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(data), encoding="utf-8")
    return out


# ---- a picture of the report ------------------------------------------------------------------------

def chromium() -> str:
    """The Chromium to drive: ``$BOUCLE_CHROMIUM``, else ``chromium`` on the PATH (Debian's package)."""
    found = os.environ.get("BOUCLE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise ReportError("no Chromium found: apt-get install chromium, or set BOUCLE_CHROMIUM to its path")
    return found


def screenshot(page: Path, png: Path, *, width: int = 1300, height: int | None = 1400) -> dict:
    """Open ``page`` in headless Chromium, wait until its plots are drawn, save a PNG of its top
    ``height`` pixels (None: the whole page). Returns what the browser saw: ``plots`` drawn,
    ``expected`` plots, ``errors`` (console errors and uncaught exceptions), ``headline``."""
    if importlib.util.find_spec("playwright") is None:
        raise ReportError("--screenshot drives Chromium with playwright, which is not installed: pip install playwright")
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium())
        try:
            tab = browser.new_page(viewport={"width": width, "height": height or 1400})
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(Path(page).resolve().as_uri(), wait_until="load")
            expected = tab.locator("div[id^=fig-]").count()
            # Drawn when every figure div has plotly's layout and SVG: a state to wait on, not a delay.
            tab.wait_for_function("n => { const divs = [...document.querySelectorAll('div[id^=fig-]')];"
                                  " return divs.length >= n && divs.every(d => d._fullLayout && d.querySelector('.main-svg')); }",
                                  arg=expected)
            seen = {"plots": tab.locator(".js-plotly-plot").count(), "expected": expected,
                    "headline": tab.locator("#headline h2").inner_text(), "errors": errors}
            Path(png).parent.mkdir(parents=True, exist_ok=True)
            tab.screenshot(path=str(png), full_page=height is None)
        finally:
            browser.close()
    return seen
