"""Attribute-alert quality on the simulator: recall, precision, delay, false alerts, per incident type.

    python benchmarks/detector_quality.py                             # default config, seeds 1-4
    python benchmarks/detector_quality.py --seeds 1 2 3 --days 28 --json var/detectors.json
    python benchmarks/detector_quality.py --config config/boucle.toml --config var/strict.toml
    python benchmarks/detector_quality.py --seeds 1 2 3 4 5 6 7 8 --groups 1-4 5-8   # per group, then pooled
    python benchmarks/detector_quality.py --detector 'river:drift.PageHinkley(mode="down", threshold=80)'

Each seed simulates the network (``days``), decodes the messages and runs the two steps of
:func:`operators.attribute_alerts.attribute_alerts` in-process (:func:`operators.attribute_replay.replay`:
the same state classes, no bytewax), in arrival-ordered batches. Opened alerts are matched to the
labelled incidents:

- ``step_drop`` / ``gradual_decline``: an attribute alert at the incident's site on its attribute,
  opened between its start and ``--grace`` hours after its end;
- ``regional_drop``: a ``regional_incident`` alert for its region and attribute in that window
  (site alerts there for that attribute are counted as ``site alerts`` of the incident, not as false);
- ``bad_burst``: any attribute alert at the site within ``--grace`` hours of the burst.

Delay is from the incident start to the event time of the alert, in simulated hours and in the
site's responses on that attribute. Precision per type = alerts matched to incidents of that type /
(those + unmatched alerts at those incidents' sites). False alerts per 100 site-months count every
alert at sites that have no incident at all. ``--groups`` also summarises groups of the seeds (say
tuning seeds and hold-out seeds) from the same runs. ``--detector`` (repeatable) also runs each config
with a river detector in place of Boucle's local triggers on every question
(:func:`operators.attribute_engine.with_river_detector`; the form of ``detectors.river_adapter``). A plot goes to ``--plot`` (PNG through matplotlib,
else HTML through plotly, else none).
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.operators.attribute_engine import AttributeAlertEngine, with_river_detector
from boucle.operators.attribute_replay import replay
from boucle.operators.decode import Decoder
from boucle.sources.simulator import Simulator

HOUR_MS = 3_600_000
TYPES = ("step_drop", "gradual_decline", "regional_drop", "bad_burst")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def run_seed(settings, seed: int, days: float, batch: int, grace_h: float) -> dict[str, Any]:
    sim = Simulator(settings, seed=seed, days=days, malformed_share=0.0)
    decoder = Decoder(settings)
    times: dict[tuple[str, str], list[int]] = defaultdict(list)
    batches, current = [], []
    for message in sim.messages():
        event = decoder.decode(message)
        if not hasattr(event, "ts_ms"):
            continue
        current.append(event)
        for name in event.attributes:
            times[(event.site_id, name)].append(event.ts_ms)
        if len(current) >= batch:
            batches.append(current)
            current = []
    batches.append(current)
    for values in times.values():
        values.sort()
    engine = AttributeAlertEngine(settings)
    alerts = [a for a in replay(engine, batches) if a["status"] == "open"]
    grace = int(grace_h * HOUR_MS)
    incidents = sim.incidents
    matched: set[int] = set()
    rows = []
    site_alerts_of: dict[str, int] = defaultdict(int)
    for inc in incidents:
        hits = []
        for i, a in enumerate(alerts):
            t = _ms(a["event_time"])
            if not inc.start_ms <= t <= inc.end_ms + grace:
                continue
            if inc.kind == "regional_drop":
                if a["attribute"] == inc.attribute and (
                        (a["kind"] == "regional_incident" and a["region"] == inc.region) or a["site_id"] in inc.sites):
                    matched.add(i)
                    if a["kind"] == "regional_incident":
                        hits.append((t, a))
                    else:
                        site_alerts_of[inc.incident_id] += 1
            elif a["kind"] == "attribute" and a["site_id"] == inc.site_id and (
                    inc.kind == "bad_burst" or a["attribute"] == inc.attribute):
                matched.add(i)
                hits.append((t, a))
        first = min(hits, key=lambda h: h[0]) if hits else None
        delay_h = delay_n = None
        if first is not None:
            delay_h = (first[0] - inc.start_ms) / HOUR_MS
            if inc.site_id and inc.attribute:
                ts = times[(inc.site_id, inc.attribute)]
                delay_n = bisect.bisect_right(ts, first[0]) - bisect.bisect_left(ts, inc.start_ms)
        rows.append({"kind": inc.kind, "id": inc.incident_id, "detected": first is not None, "delay_h": delay_h,
                     "delay_n": delay_n, "alerts": len(hits), "site_alerts": site_alerts_of[inc.incident_id],
                     "sites": set(inc.sites)})
    incident_sites = {s for inc in incidents for s in inc.sites}
    free_sites = [p.site_id for p in sim.profiles if p.site_id not in incident_sites]
    unmatched = [a for i, a in enumerate(alerts) if i not in matched]
    false_free = sum(1 for a in unmatched if a["site_id"] in free_sites)
    return {"rows": rows, "alerts": len(alerts), "unmatched": unmatched, "false_free": false_free,
            "free_site_months": len(free_sites) * days / 30.0, "matched": len(matched)}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"incidents": {}}
    for kind in TYPES:
        rows = [r for res in results for r in res["rows"] if r["kind"] == kind]
        if not rows:
            continue
        detected = [r for r in rows if r["detected"]]
        tp = sum(r["alerts"] for r in rows)
        sites = set().union(*(r["sites"] for r in rows))
        fp = sum(1 for res in results for a in res["unmatched"] if a["site_id"] in sites and a["kind"] == "attribute")
        delays_h = [r["delay_h"] for r in detected]
        delays_n = [r["delay_n"] for r in detected if r["delay_n"] is not None]
        out["incidents"][kind] = {
            "count": len(rows),
            "recall": len(detected) / len(rows),
            "precision": tp / (tp + fp) if tp + fp else None,
            "median_delay_hours": statistics.median(delays_h) if delays_h else None,
            "median_delay_responses": statistics.median(delays_n) if delays_n else None,
            "site_alerts_per_incident": (sum(r["site_alerts"] for r in rows) / len(rows)
                                         if kind == "regional_drop" else None),
        }
    months = sum(res["free_site_months"] for res in results)
    out["false_alerts_per_100_site_months"] = 100 * sum(res["false_free"] for res in results) / max(months, 1e-9)
    total = sum(res["alerts"] for res in results)
    out["precision_overall"] = sum(res["matched"] for res in results) / total if total else None
    out["alerts"] = total
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def markdown(name: str, summary: dict[str, Any]) -> str:
    lines = [f"### {name}", "", "| incident | n | recall | precision | median delay (h) | median delay (responses) |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind, s in summary["incidents"].items():
        extra = f" ({_fmt(s['site_alerts_per_incident'], 1)} site alerts each)" if kind == "regional_drop" else ""
        lines.append(f"| {kind}{extra} | {s['count']} | {_fmt(s['recall'])} | {_fmt(s['precision'])} | "
                     f"{_fmt(s['median_delay_hours'], 1)} | {_fmt(s['median_delay_responses'], 0)} |")
    lines += ["", f"False attribute alerts per 100 site-months (incident-free sites): "
                  f"**{summary['false_alerts_per_100_site_months']:.2f}**; alerts opened: {summary['alerts']}; "
                  f"overall precision: {_fmt(summary['precision_overall'])}", ""]
    return "\n".join(lines)


def plot(summaries: dict[str, dict[str, Any]], path: Path) -> str | None:
    """Recall per incident type, one bar per config: a PNG (matplotlib, the ``bench`` extra), else an
    interactive HTML file (plotly), else nothing."""
    configs = {name: s for name, s in summaries.items() if " seeds " not in name}  # groups: in the tables
    if not configs:
        return None
    kinds = list(next(iter(configs.values()))["incidents"])
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_html(configs, kinds, path)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / len(configs)
    for i, (name, s) in enumerate(configs.items()):
        recalls = [s["incidents"][k]["recall"] or 0.0 for k in kinds]
        bars = ax.bar([x + i * width for x in range(len(kinds))], recalls, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([x + width * (len(configs) - 1) / 2 for x in range(len(kinds))], kinds)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("recall")
    ax.set_title("Attribute alerts: recall per incident type")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = path.with_suffix(".png")
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return str(png)


def _plot_html(configs: dict[str, dict[str, Any]], kinds: list[str], path: Path) -> str | None:
    try:
        import plotly.graph_objects as go
    except ImportError:
        return None
    fig = go.Figure()
    for name, s in configs.items():
        fig.add_bar(name=f"{name} recall", x=kinds, y=[s["incidents"][k]["recall"] for k in kinds])
    fig.update_layout(barmode="group", title="Attribute alerts: recall per incident type", yaxis_range=[0, 1])
    fig.write_html(str(path.with_suffix(".html")))
    return str(path.with_suffix(".html"))


def _group(text: str) -> list[int]:
    """``"1-4"`` -> [1, 2, 3, 4]; ``"1,3,5"`` -> [1, 3, 5]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", default=None, help="a settings file (repeat to compare)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--days", type=float, default=28)
    parser.add_argument("--batch", type=int, default=200, help="messages per batch (bytewax hands over batches)")
    parser.add_argument("--grace", type=float, default=48, help="hours after an incident's end still matched")
    parser.add_argument("--groups", nargs="+", default=[], metavar="SEEDS",
                        help="also summarise these groups of the seeds, e.g. 1-4 5-8")
    parser.add_argument("--detector", action="append", default=[], metavar="SPEC",
                        help="also run with this river detector instead of Boucle's local triggers, "
                             "e.g. 'river:drift.ADWIN(delta=0.001)' (repeat to compare)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=Path("var/detectors_benchmark"))
    args = parser.parse_args(argv)
    console = Console(width=140)
    summaries = {}
    runs = []
    for path in args.config or [str(SHIPPED_CONFIG)]:
        settings = load_settings(path)
        runs.append((path, Path(path).name, settings))
        runs.extend((f"{path} {option}", f"{Path(path).name} {option}", with_river_detector(settings, option))
                    for option in args.detector)
    for path, name, settings in runs:
        results = {seed: run_seed(settings, seed, args.days, args.batch, args.grace) for seed in args.seeds}
        for text in args.groups:
            seeds = [seed for seed in _group(text) if seed in results]
            group = summarise([results[seed] for seed in seeds])
            summaries[f"{name} seeds {text}"] = group
            console.print(markdown(f"{path} — seeds {seeds}, {args.days:g} days", group))
        summaries[name] = summarise(list(results.values()))
        console.print(markdown(f"{path} — seeds {args.seeds}{' (pooled)' if args.groups else ''}, "
                               f"{args.days:g} days", summaries[name]))
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    where = plot(summaries, args.plot)
    console.print(f"plot: {where or 'not written (plotly missing)'}")
    first = next(iter(summaries.values()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(first if len(summaries) == 1 else summaries, indent=2))
    return summaries


if __name__ == "__main__":
    main()
