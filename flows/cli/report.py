"""``boucle report``: one self-contained HTML file built on the BI views.

Sections (each a plotly figure; plotly.js is inlined once, so the file opens offline):

1. ``nps`` — NPS over time per region (daily bars of responses are omitted; a 7-day rolling NPS
   line per region, from ``v_nps_region_daily``);
2. ``peers`` — site x question heatmap coloured by the robust z against the region's sites
   (``v_peer_comparison``), the score written in each cell;
3. ``leaderboard`` — NPS progress against the previous period per site (``v_leaderboard``);
4. ``alerts`` — alerts opened per day by kind, a timeline of the non-hot alerts (``v_alerts``), and
   hot alerts per site and day for the busiest sites, published and held by the rate cap
   (``v_site_alert_days``: what tuning the hot rules is about);
5. ``importance`` — attribute importance from ``attribute_importance`` when that table has rows
   (a region whose latest status is ``not_enough_data`` is named as such, not drawn as equal shares;
   one that leans on the network's evidence is labelled so), else a labelled stand-in: the correlation of each attribute with NPS per region, computed by
   ClickHouse ``corr()`` over the period's feedback;
6. ``watched`` — what the attribute alerts watch (``v_series_status``): per question, the series
   watched and those still warming up, and how many responses the latter still need.

>>> parse_period("30d"), parse_period("2w"), parse_period(14)
(30, 14, 14)
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boucle.config.locales import is_language_code, language_of, texts
from boucle.config.settings import parse_duration
from boucle.sinks.safe_text import html_text

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from boucle.config.settings import Settings

__all__ = ["ReportError", "SECTIONS", "build_report", "collect", "parse_period", "write_report"]

SECTIONS = ("nps", "peers", "leaderboard", "alerts", "importance", "watched")

SEVERITY_COLOURS = {"low": "#9ecae1", "medium": "#fdae6b", "high": "#e6550d", "critical": "#a50f15"}


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
    nps: list[dict] = field(default_factory=list)
    peers: list[dict] = field(default_factory=list)
    leaderboard: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    site_days: list[dict] = field(default_factory=list)  # hot alerts per site and day: published, held
    importance: list[dict] = field(default_factory=list)
    importance_is_standin: bool = True
    importance_unknown: list[str] = field(default_factory=list)  # regions whose importance is not known yet
    watched: list[dict] = field(default_factory=list)  # per question: watched, warming up, median needs


def _rows(client: Client, sql: str, **params: Any) -> list[dict]:
    from boucle.sinks.clickhouse.client import client_lock

    with client_lock(client):
        result = client.query(sql, parameters=params)
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def collect(client: Client, database: str, *, region: str | None, period_days: int, lang: str = "en") -> ReportData:
    """Read everything the report shows from the views of ``database``."""
    db = database
    anchor = _rows(client, f"SELECT max(day) AS d, count() AS n FROM {db}.site_attribute_daily")[0]
    if not anchor["n"]:
        raise ReportError("the warehouse has no daily scores yet: run `boucle run` first")
    end: date = anchor["d"]
    start = end - timedelta(days=period_days - 1)
    if region and not _rows(client, f"SELECT 1 FROM {db}.sites FINAL WHERE region = {{r:String}} LIMIT 1", r=region):
        raise ReportError(f"no site of region {region!r} in the warehouse (see the sites table)")
    known = {r["period_days"] for r in _rows(client, f"SELECT DISTINCT period_days FROM {db}.periods")}
    if period_days not in known:  # the views compare the periods listed there; a report only reads
        listed = ", ".join(f"{p}d" for p in sorted(known)) or "none"
        raise ReportError(
            f"{period_days}d is not a comparison period of the warehouse ({listed}); add it once with"
            f' `boucle query --write "INSERT INTO periods VALUES ({period_days})"`'
        )
    where = "({r:String} = '' OR region = {r:String})"
    params = {"r": region or "", "p": period_days, "start": start, "end": end}
    label_col = "label_fr" if language_of(lang) == "fr" else "label_en"
    labels = {r["attribute"]: r["label"] for r in _rows(
        client, f"SELECT attribute, {label_col} AS label FROM {db}.questions FINAL"
                f" ORDER BY is_score DESC, indexOf(['nps', 'csat', 'ces'], attribute), label")}
    region_names = {r["region"]: r["name"] for r in _rows(
        client, f"SELECT region, any(region_name) AS name FROM {db}.sites FINAL GROUP BY region")}
    totals = _rows(client, f"SELECT uniqExact(site_id) AS sites, sum(n) AS responses FROM {db}.v_site_attribute_daily"
                           f" WHERE attribute = 'nps' AND day BETWEEN {{start:Date}} AND {{end:Date}} AND {where}", **params)[0]
    data = ReportData(region, period_days, start, end, lang, labels, region_names, totals["sites"], totals["responses"])
    data.nps = _rows(client, f"SELECT day, region, region_name, responses, promoters, detractors FROM {db}.v_nps_region_daily"
                             f" WHERE {where} ORDER BY region, day", **params)
    data.peers = _rows(client, f"SELECT site_id, site_name, region, attribute, score, n, robust_z, region_peer_median,"
                               f" region_rank, region_sites FROM {db}.v_peer_comparison"
                               f" WHERE period_days = {{p:UInt32}} AND {where}", **params)
    data.leaderboard = _rows(client, f"SELECT site_id, site_name, region, score, previous_score, delta, progress_rank,"
                                     f" level_rank, region_sites, n FROM {db}.v_leaderboard"
                                     f" WHERE period_days = {{p:UInt32}} AND attribute = 'nps' AND {where}"
                                     f" ORDER BY delta", **params)
    data.alerts = _rows(client, f"SELECT alert_id, kind, status, severity, site_id, site_name, region, attribute, message,"
                                f" first_event_time FROM {db}.v_alerts WHERE toDate(first_event_time) BETWEEN"
                                f" {{start:Date}} AND {{end:Date}} AND {where} ORDER BY first_event_time", **params)
    data.site_days = _rows(client, f"SELECT d.day AS day, d.site_id AS site_id, if(s.name = '', d.site_id, s.name)"
                                   f" AS site_name, d.hot_alerts AS hot_alerts, d.hot_held AS hot_held"
                                   f" FROM {db}.v_site_alert_days AS d LEFT JOIN (SELECT site_id, name FROM"
                                   f" {db}.sites FINAL) AS s ON s.site_id = d.site_id WHERE d.day BETWEEN"
                                   f" {{start:Date}} AND {{end:Date}} AND ({{r:String}} = '' OR d.region = {{r:String}})"
                                   f" ORDER BY d.day", **params)
    has_model = _rows(client, "SELECT count() AS n FROM system.tables WHERE database = {db:String}"
                              " AND name = 'attribute_importance'", db=db)[0]["n"]
    if has_model:
        latest = _rows(client, f"SELECT region, attribute, argMax(weight, updated_at) AS weight,"
                               f" argMax(status, updated_at) AS status"
                               f" FROM {db}.attribute_importance WHERE {where} GROUP BY region, attribute", **params)
        data.importance_unknown = sorted({r["region"] for r in latest if r["status"] == "not_enough_data"})
        data.importance = [r for r in latest if r["status"] != "not_enough_data"]
    data.importance_is_standin = not data.importance and not data.importance_unknown
    data.watched = _rows(client, f"SELECT question, countIf(status = 'watched') AS watched,"
                                 f" countIf(status != 'watched') AS warming, medianIf(needs, status != 'watched')"
                                 f" AS needs FROM {db}.v_series_status WHERE {where} GROUP BY question", **params)
    if data.importance_is_standin:
        data.importance = _rows(
            client,
            f"SELECT region, kv.1 AS attribute, corr(toFloat64(kv.2), toFloat64(scores['nps'])) AS weight, count() AS n"
            f" FROM {db}.feedback FINAL ARRAY JOIN arrayZip(mapKeys(attributes), mapValues(attributes)) AS kv"
            f" WHERE mapContains(scores, 'nps') AND toDate(occurred_at) BETWEEN {{start:Date}} AND {{end:Date}}"
            f" AND {where} GROUP BY region, attribute HAVING n >= 20 AND NOT isNaN(weight)", **params)
    return data


# ---- figures ------------------------------------------------------------------------------------

def _layout(fig, height: int, **kwargs: Any) -> None:
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                      font=dict(family="system-ui, Segoe UI, Helvetica, Arial, sans-serif", size=13), **kwargs)


def _nps_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    by_region: dict[str, list[dict]] = {}
    for row in data.nps:
        by_region.setdefault(row["region"], []).append(row)
    for region, rows in by_region.items():
        days, values = [], []
        for i in range(len(rows)):
            window = [r for r in rows[max(0, i - 6): i + 1] if (rows[i]["day"] - r["day"]).days < 7]
            n = sum(r["responses"] for r in window)
            if n:
                days.append(rows[i]["day"])
                values.append(round(100 * (sum(r["promoters"] for r in window) - sum(r["detractors"] for r in window)) / n, 1))
        fig.add_trace(go.Scatter(x=days, y=values, mode="lines", name=data.region_names.get(region) or region,
                                 hovertemplate="%{x|%d %b %Y}: NPS %{y}<extra>%{fullData.name}</extra>"))
    fig.add_vrect(x0=data.period_start, x1=data.period_end + timedelta(days=1), fillcolor="#888", opacity=0.08,
                  line_width=0)
    _layout(fig, 420, yaxis_title=t["nps_axis"], xaxis_title=t["day"], legend=dict(orientation="h", y=-0.2))
    return fig


def _peers_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    questions = [q for q in data.labels if any(r["attribute"] == q for r in data.peers)]
    questions += sorted({r["attribute"] for r in data.peers} - set(questions))
    sites = sorted({(data.region_names.get(r["region"], r["region"]), r["site_name"], r["site_id"]) for r in data.peers},
                   reverse=True)
    cell = {(r["site_id"], r["attribute"]): r for r in data.peers}
    z, text, hover = [], [], []
    for _region, name, site in sites:
        z_row, text_row, hover_row = [], [], []
        for q in questions:
            r = cell.get((site, q))
            value = None if r is None or r["robust_z"] is None else max(-3.0, min(3.0, r["robust_z"]))
            z_row.append(value)
            text_row.append("" if r is None else (f"{r['score']:.0f}" if q == "nps" else f"{r['score']:.2f}"))
            hover_row.append("" if r is None else
                             f"{name} · {data.labels.get(q, q)}<br>score {r['score']:.2f} (n={r['n']})<br>"
                             f"peer median {r['region_peer_median'] if r['region_peer_median'] is not None else '—'}"
                             f"<br>rank {r['region_rank']}/{r['region_sites']}")
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
    y = [f"{name} ({region_name})" if data.region is None else name for region_name, name, _ in sites]
    fig = go.Figure(go.Heatmap(
        z=z, x=[data.labels.get(q, q) for q in questions], y=y, text=text, texttemplate="%{text}",
        customdata=hover, hovertemplate="%{customdata}<extra></extra>", colorscale="RdBu", zmid=0, zmin=-3, zmax=3,
        colorbar=dict(title="z"), xgap=1, ygap=1,
    ))
    _layout(fig, max(320, 24 * len(y) + 120), xaxis=dict(side="top"))
    return fig


def _leaderboard_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    rows = data.leaderboard
    labels = [r["site_name"] if data.region else f"{r['site_name']} ({data.region_names.get(r['region'], r['region'])})"
              for r in rows]
    fig = go.Figure(go.Bar(
        x=[round(r["delta"], 1) for r in rows], y=labels, orientation="h",
        marker_color=["#1a9850" if r["delta"] >= 0 else "#d73027" for r in rows],
        customdata=[[round(r["previous_score"], 1), round(r["score"], 1), r["progress_rank"], r["level_rank"],
                     r["region_sites"]] for r in rows],
        hovertemplate="%{y}<br>NPS %{customdata[0]} → %{customdata[1]} (%{x:+})<br>progress rank %{customdata[2]}"
                      "/%{customdata[4]} · level rank %{customdata[3]}<extra></extra>",
    ))
    _layout(fig, max(320, 22 * len(rows) + 100), xaxis_title=t["delta"])
    return fig


def _alerts_figures(data: ReportData, t: dict):
    import plotly.graph_objects as go

    counts: dict[str, dict[date, int]] = {}
    for a in data.alerts:
        day = a["first_event_time"].date()
        counts.setdefault(a["kind"], {}).setdefault(day, 0)
        counts[a["kind"]][day] += 1
    per_day = go.Figure([go.Bar(x=sorted(c), y=[c[d] for d in sorted(c)], name=kind) for kind, c in sorted(counts.items())])
    _layout(per_day, 320, barmode="stack", yaxis_title=t["alerts_axis"], legend=dict(orientation="h", y=-0.25))
    notable = [a for a in data.alerts if a["kind"] != "hot"] or [a for a in data.alerts if a["severity"] == "critical"]
    timeline = go.Figure()
    for severity, colour in SEVERITY_COLOURS.items():
        chosen = [a for a in notable if a["severity"] == severity]
        if chosen:
            timeline.add_trace(go.Scatter(
                x=[a["first_event_time"] for a in chosen], y=[html_text(a["site_name"] or a["region"]) for a in chosen],
                mode="markers", name=severity, marker=dict(color=colour, size=10, line=dict(width=1, color="#333")),
                # A message may quote a customer: escaped, or plotly would render its <a href> and <b>.
                text=[html_text(f"{a['kind']} · {data.labels.get(a['attribute'], a['attribute'])} · {a['status']}: "
                                f"{a['message']}") for a in chosen],
                hovertemplate="%{x|%d %b %H:%M} · %{y}<br>%{text}<extra></extra>",
            ))
    _layout(timeline, max(300, 18 * len({a["site_name"] for a in notable}) + 120), legend=dict(orientation="h", y=-0.2))
    return (per_day, timeline, _site_days_figure(data, t)) if data.site_days else (per_day, timeline)


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
                               hovertemplate="%{y} · %{x|%d %b}: %{z} (%{text})<extra></extra>",
                               colorbar=dict(title=t["alerts_axis"])))
    _layout(fig, max(300, 22 * len(sites) + 120), yaxis=dict(autorange="reversed"))
    return fig


def _importance_figure(data: ReportData, t: dict):
    import plotly.graph_objects as go

    regions = sorted({r["region"] for r in data.importance})
    attributes = sorted({r["attribute"] for r in data.importance},
                        key=lambda a: -sum(r["weight"] for r in data.importance if r["attribute"] == a))
    weight = {(r["region"], r["attribute"]): r["weight"] for r in data.importance}
    borrowed = {r["region"] for r in data.importance if r.get("status") == "network"}

    def name(region: str) -> str:
        shown = data.region_names.get(region, region)
        return f"{shown} ({t['importance_network']})" if region in borrowed else shown

    fig = go.Figure([
        go.Bar(y=[data.labels.get(a, a) for a in attributes], x=[round(weight.get((region, a), math.nan), 3) for a in attributes],
               orientation="h", name=name(region))
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


def _watched_help(data: ReportData, t: dict) -> str:
    watched = sum(r["watched"] for r in data.watched)
    total = watched + sum(r["warming"] for r in data.watched)
    needs = [r["needs"] for r in data.watched if r["warming"] and not math.isnan(r["needs"])]
    return t["watched_help"].format(watched=f"{watched:,}", total=f"{total:,}",
                                    needs=f"{sorted(needs)[len(needs) // 2]:.0f}" if needs else "0")


# ---- HTML ---------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d3557;color:#fff;padding:24px 40px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;opacity:.85}main{max-width:1300px;margin:0 auto;padding:10px 30px 40px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);margin:22px 0;padding:16px 22px}
section h2{margin:4px 0 4px;font-size:20px}.help{color:#555;margin:0 0 10px;font-size:14px}
.empty{color:#888;font-style:italic}
"""


def build_report(data: ReportData) -> str:
    """The report as one HTML document (plotly.js inlined)."""
    from plotly.offline import get_plotlyjs

    t = texts("report", data.lang)
    scope = data.region_names.get(data.region, data.region) if data.region else t["scope_all"]
    importance_help = t["importance_standin"] if data.importance_is_standin else t["importance_model"]
    if data.importance_unknown:
        importance_help += " " + t["importance_unknown"].format(
            regions=", ".join(data.region_names.get(r, r) for r in data.importance_unknown))
    parts: list[tuple[str, str, str, list]] = [
        ("nps", t["nps"], t["nps_help"], [_nps_figure(data, t)] if data.nps else []),
        ("peers", t["peers"], t["peers_help"], [_peers_figure(data, t)] if data.peers else []),
        ("leaderboard", t["leaderboard"], t["leaderboard_help"], [_leaderboard_figure(data, t)] if data.leaderboard else []),
        ("alerts", t["alerts"], t["alerts_help"], list(_alerts_figures(data, t)) if data.alerts else []),
        ("importance", t["importance"], importance_help, [_importance_figure(data, t)] if data.importance else []),
        ("watched", t["watched"], _watched_help(data, t), [_watched_figure(data, t)] if data.watched else []),
    ]
    body = []
    for key, title, help_text, figures in parts:
        divs = "".join(
            fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig-{key}-{i}",
                        config={"displaylogo": False, "responsive": True})
            for i, fig in enumerate(figures)
        ) or f'<p class="empty">{html.escape(t["no_data"])}</p>'
        body.append(f'<section id="{key}"><h2>{html.escape(title)}</h2><p class="help">{html.escape(help_text)}</p>'
                    f"{divs}</section>")
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = (f"{html.escape(scope)} · {t['period']} {data.period_start:%d/%m/%Y} – {data.period_end:%d/%m/%Y}"
                f" ({data.period_days} d) · {data.sites} {t['sites_n']} · {data.responses:,} {t['responses']}"
                f" · {t['generated']} {generated}")
    meta = json.dumps({"sections": list(SECTIONS), "period_days": data.period_days, "region": data.region})
    return (
        f'<!DOCTYPE html><html lang="{data.lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(t['title'])}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
        f'<script type="application/json" id="boucle-report">{meta}</script></head>'
        f"<body><header><h1>{html.escape(t['title'])}</h1><p>{subtitle}</p></header>"
        f"<main>{''.join(body)}</main></body></html>"
    )


def write_report(settings: Settings, out: Path, *, region: str | None = None, period: Any = "30d",
                 lang: str = "en") -> Path:
    """Build the report from the warehouse of ``settings`` and write it to ``out``.

    Read-only: a read-only session (a BI user works), no migration, no TTL, no dimension sync;
    a warehouse without the schema is one line saying to run ``boucle db migrate``.
    """
    from boucle.config.redact import redact_url
    from boucle.flows.cli.common import read_client
    from boucle.sinks.clickhouse.schema import check_schema

    if not is_language_code(lang):
        raise ReportError(f"--lang must be a language code such as en, fr, de, es, it or nl, got {lang!r}")
    if importlib.util.find_spec("plotly") is None:
        raise ReportError("the report draws with plotly, which is not installed: pip install 'boucle[report]'")
    period_days = parse_period(period)
    warehouse = settings.warehouse
    client = read_client(settings)
    check_schema(client, warehouse.database, redact_url(warehouse.url or warehouse.path))
    data = collect(client, warehouse.database, region=region, period_days=period_days, lang=lang)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build_report(data), encoding="utf-8")
    return out
