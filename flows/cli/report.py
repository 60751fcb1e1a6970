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

What the report reads is :mod:`flows.cli.report_data`; its picture, :mod:`flows.cli.screenshot`.
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boucle.config.locales import collation_key, format_date, format_number, is_language_code, label_in, texts
from boucle.flows.cli.report_data import (
    DEFAULT_PERIOD,
    MIN_N,
    ReportData,
    ReportError,
    by_region_of,
    collect,
    parse_period,
    rolling,
)
from boucle.flows.cli.screenshot import screenshot
from boucle.sinks.safe_text import html_text

if TYPE_CHECKING:
    from boucle.config.settings import Settings

__all__ = ["DEFAULT_PERIOD", "MIN_N", "ReportError", "SECTIONS", "build_report", "collect", "parse_period",
           "screenshot", "write_report"]

SECTIONS = ("headline", "peers", "leaderboard", "alerts", "importance", "watched", "cases")
FIGURE_SECTIONS = SECTIONS[:-1]  # ``cases`` is a row of figures in HTML, not a plot

SEVERITY_COLOURS = {"low": "#9ecae1", "medium": "#fdae6b", "high": "#e6550d", "critical": "#a50f15"}
OUTER_LOOP = ("attribute", "regional_incident")  # the timeline's kinds: what a site or region does, not SLAs


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
    by_region = by_region_of(data.series)
    for region in sorted(by_region, key=lambda r: collation_key(data.region_name(r))):
        points = rolling(by_region[region], data.rolling_days)
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
