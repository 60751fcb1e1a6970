"""Attribute-alert quality on a simulated network: recall, precision, delay, false alerts, per incident type.

    python benchmarks/detectors.py                                    # demo network, default config, seeds 1-4
    python benchmarks/detectors.py --profile reviews --seeds 1 2 3 4 --json var/detectors-reviews.json
    python benchmarks/detectors.py --profile retail --days 120 --sites 800   # a smaller retail network
    python benchmarks/detectors.py --config config/boucle.toml --config var/strict.toml
    python benchmarks/detectors.py --seeds 1 2 3 4 5 6 7 8 --groups 1-4 5-8   # per group, then pooled

Each seed simulates the network of ``--profile`` (demo, retail or reviews; ``--days`` defaults to the
profile's length), decodes the messages and runs the two steps of
:func:`operators.attribute_alerts.attribute_alerts` in-process (:func:`operators.attribute_replay.replay`:
the same state classes, no bytewax), in arrival-ordered batches. The engine comes from
:func:`build_engine` (the hook where other detectors plug in; ``--detector`` names one). Opened alerts
are matched to the labelled incidents:

- ``step_drop`` / ``gradual_decline``: an attribute alert at the incident's site on its attribute,
  opened between its start and ``--grace`` hours after its end;
- ``regional_drop``: a ``regional_incident`` alert for its region and attribute in that window
  (site alerts there for that attribute are counted as ``site alerts`` of the incident, not as false);
- ``bad_burst``: any attribute alert at the site within ``--grace`` hours of the burst.

Delay is from the incident start to the event time of the alert, in simulated hours (and days) and in
the site's responses on that attribute. Precision per type = alerts matched to incidents of that type /
(those + unmatched alerts at those incidents' sites). False alerts per 100 site-months count every
alert at sites that have no incident at all. *Eligible* incidents are the drops the issue's targets
speak of (retail: >= 0.5 point at sites with >= 3 responses a day; reviews: >= 1 point lasting a
quarter at sites with >= 8 reviews a quarter), reported apart.

The **null replay** (unless ``--no-null``) runs the same messages again with each site's rating content
(scores and attributes of a response) permuted across that site's own responses: dates, volumes and
each site's multiset of ratings are kept, every signal is gone, and every alert is false; it gives
``null_false_alerts_per_100_site_months`` over all sites. ``--groups`` also summarises groups of the
seeds (say tuning seeds and hold-out seeds) from the same runs. A plot goes to ``--plot`` (PNG through
matplotlib, else HTML through plotly, else none).
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import msgspec
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.config.settings import Settings
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_replay import replay
from boucle.operators.decode import Decoder, Feedback
from boucle.sources.simulator import Simulator
from boucle.sources.simulator.networks import PROFILES

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
TYPES = ("step_drop", "gradual_decline", "regional_drop", "bad_burst")
DETECTORS = ("boucle",)
GRACE_HOURS = {"demo": 48.0, "retail": 7 * 24.0, "reviews": 30 * 24.0}  # after an incident's end
_MISSING = -1


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def build_engine(settings: Settings, detector: str = "boucle") -> AttributeAlertEngine:
    """The attribute-alert engine a run measures: the hook where another detector plugs in.

    ``"boucle"`` is the engine of ``settings.attribute_alerts``; other names (say
    ``river:drift.PageHinkley``) are for the adapter of river's detectors, not here yet.
    """
    if detector != "boucle":
        raise SystemExit(f"--detector {detector}: not available (known: {', '.join(DETECTORS)})")
    return AttributeAlertEngine(settings)


# -- the null replay ----------------------------------------------------------------------------

class NullShuffle:
    """Each site's rating content permuted across that site's own responses.

    :meth:`record` sees the events of a first pass (in order) and keeps their ratings compactly;
    :meth:`apply` then takes the same events again, in the same order, and gives each the ratings
    of another response of its site (a permutation per site, by ``seed``): every date, every
    site's volume and multiset of ratings is kept.

    >>> from boucle.operators.decode import Feedback
    >>> events = [Feedback(str(i), i, "s1" if i % 2 else "s2", "store", "", {"nps": i}, {"a": i}, "", "fr", {},
    ...                    i, "") for i in range(6)]
    >>> null = NullShuffle(["nps", "a"], scores=["nps"], seed=1)
    >>> for e in events: null.record(e)
    >>> shuffled = [null.apply(e) for e in events]
    >>> [e.ts_ms for e in shuffled] == [e.ts_ms for e in events]
    True
    >>> sorted(e.scores["nps"] for e in shuffled if e.site_id == "s1")
    [1, 3, 5]
    """

    def __init__(self, questions: Iterable[str], scores: Iterable[str], seed: int) -> None:
        self.questions = list(questions)
        self.scores = frozenset(scores)
        self.seed = seed
        self._rows: dict[str, list[tuple[int, ...]]] = defaultdict(list)
        self._perm: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._next: dict[str, int] = defaultdict(int)

    def record(self, event: Feedback) -> None:
        row = tuple(event.scores.get(q, event.attributes.get(q, _MISSING)) for q in self.questions)
        self._rows[event.site_id].append(row)

    def _site(self, site_id: str) -> tuple[np.ndarray, np.ndarray]:
        if site_id not in self._perm:
            rows = np.array(self._rows.pop(site_id), dtype=np.int16)
            rng = np.random.default_rng([self.seed, len(self._perm), len(rows)])
            self._perm[site_id] = (rows, rng.permutation(len(rows)))
        return self._perm[site_id]

    def apply(self, event: Feedback) -> Feedback:
        rows, perm = self._site(event.site_id)
        k = self._next[event.site_id]
        self._next[event.site_id] = k + 1
        row = rows[perm[k]].tolist()
        scores, attributes = {}, {}
        for q, v in zip(self.questions, row):
            if v != _MISSING:
                (scores if q in self.scores else attributes)[q] = v
        return msgspec.structs.replace(event, scores=scores, attributes=attributes)


# -- one seed -------------------------------------------------------------------------------------

def _events(sim: Simulator, decoder: Decoder, batch: int, advance: Callable[[int], None],
            each: Callable[[Feedback], Feedback | None]) -> Iterator[list[Feedback]]:
    """The simulator's valid events in arrival-ordered batches of ``batch`` messages."""
    current: list = []
    for message in sim.messages():
        current.append(message)
        if len(current) >= batch:
            yield _decoded(decoder, current, each)
            advance(len(current))
            current = []
    yield _decoded(decoder, current, each)
    advance(len(current))


def _decoded(decoder: Decoder, messages: list, each) -> list[Feedback]:
    out = []
    for event in decoder.decode_many(messages).accepted:
        event = each(event)
        if event is not None:
            out.append(event)
    return out


def eligible(inc, profile_name: str, daily: dict[str, float]) -> bool:
    """Whether an incident is one the issue's targets speak of (a large enough drop at a busy enough site)."""
    rule = PROFILES[profile_name].eligibility
    if rule is None or inc.kind not in ("step_drop", "gradual_decline") or inc.magnitude is None:
        return False
    return (inc.magnitude >= rule.min_magnitude and (inc.end_ms - inc.start_ms) >= rule.min_length_days * DAY_MS - 1
            and daily.get(inc.site_id, 0.0) >= rule.min_daily)


def run_seed(settings, seed: int, days: float | None, batch: int, grace_h: float, *, profile: str = "demo",
             sites: int | None = None, detector: str = "boucle", null: bool = True,
             progress: Progress | None = None) -> dict[str, Any]:
    sim = Simulator(settings, seed=seed, days=days, malformed_share=0.0, profile=profile, sites=sites)
    settings = sim.settings
    decoder = Decoder(settings)
    total = sim.count()
    task = progress.add_task(f"seed {seed}", total=total * (2 if null else 1)) if progress else None

    def advance(n: int) -> None:
        if progress is not None:
            progress.advance(task, n)

    watched = {(inc.site_id, inc.attribute) for inc in sim.incidents if inc.site_id and inc.attribute}
    times: dict[tuple[str, str], list[int]] = defaultdict(list)
    shuffle = NullShuffle(settings.questions(), settings.scores, seed) if null else None

    def first_pass(event: Feedback) -> Feedback:
        for name in event.attributes:
            if (event.site_id, name) in watched:
                times[(event.site_id, name)].append(event.ts_ms)
        if shuffle is not None:
            shuffle.record(event)
        return event

    alerts = [a for a in replay(build_engine(settings, detector), _events(sim, decoder, batch, advance, first_pass))
              if a["status"] == "open"]
    null_alerts = None
    if shuffle is not None:
        null_alerts = [a for a in replay(build_engine(settings, detector),
                                         _events(sim, decoder, batch, advance, shuffle.apply))
                       if a["status"] == "open"]
    for values in times.values():
        values.sort()
    grace = int(grace_h * HOUR_MS)
    incidents = sim.incidents
    daily = {p.site_id: p.daily_mean * sim.volume_scale for p in sim.profiles}
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
                     "sites": set(inc.sites), "eligible": eligible(inc, sim.network.name, daily)})
    incident_sites = {s for inc in incidents for s in inc.sites}
    free_sites = {p.site_id for p in sim.profiles if p.site_id not in incident_sites}
    unmatched = [a for i, a in enumerate(alerts) if i not in matched]
    false_free = sum(1 for a in unmatched if a["site_id"] in free_sites)
    out = {"rows": rows, "alerts": len(alerts), "unmatched": unmatched, "false_free": false_free,
           "free_site_months": len(free_sites) * sim.days / 30.0, "matched": len(matched),
           "site_months": len(sim.profiles) * sim.days / 30.0, "days": sim.days, "sites": len(sim.profiles),
           "free_sites": len(free_sites), "events": total}
    if null_alerts is not None:
        out["null_alerts"] = len(null_alerts)
        out["null_by_kind"] = dict(sorted(Counter(a["kind"] for a in null_alerts).items()))
    if progress is not None:
        progress.remove_task(task)
    return out


def _kind_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    detected = [r for r in rows if r["detected"]]
    delays_h = [r["delay_h"] for r in detected]
    delays_n = [r["delay_n"] for r in detected if r["delay_n"] is not None]
    return {
        "count": len(rows),
        "recall": len(detected) / len(rows) if rows else None,
        "median_delay_hours": statistics.median(delays_h) if delays_h else None,
        "median_delay_days": statistics.median(delays_h) / 24 if delays_h else None,
        "median_delay_responses": statistics.median(delays_n) if delays_n else None,
    }


def summarise(results: list[dict[str, Any]], profile: str = "demo") -> dict[str, Any]:
    out: dict[str, Any] = {"profile": profile, "incidents": {}}
    for kind in TYPES:
        rows = [r for res in results for r in res["rows"] if r["kind"] == kind]
        if not rows:
            continue
        tp = sum(r["alerts"] for r in rows)
        sites = set().union(*(r["sites"] for r in rows))
        fp = sum(1 for res in results for a in res["unmatched"] if a["site_id"] in sites and a["kind"] == "attribute")
        out["incidents"][kind] = {
            **_kind_summary(rows),
            "precision": tp / (tp + fp) if tp + fp else None,
            "site_alerts_per_incident": (sum(r["site_alerts"] for r in rows) / len(rows)
                                         if kind == "regional_drop" else None),
        }
    rule = PROFILES[profile].eligibility
    if rule is not None:
        out["eligible"] = {"rule": rule.text, **{
            kind: _kind_summary([r for res in results for r in res["rows"] if r["kind"] == kind and r["eligible"]])
            for kind in ("step_drop", "gradual_decline")}}
    months = sum(res["free_site_months"] for res in results)
    out["false_alerts_per_100_site_months"] = 100 * sum(res["false_free"] for res in results) / max(months, 1e-9)
    if all("null_alerts" in res for res in results):
        all_months = sum(res["site_months"] for res in results)
        out["null_false_alerts_per_100_site_months"] = (
            100 * sum(res["null_alerts"] for res in results) / max(all_months, 1e-9))
        by_kind: dict[str, int] = defaultdict(int)
        for res in results:
            for kind, n in res["null_by_kind"].items():
                by_kind[kind] += n
        out["null_alerts_by_kind"] = dict(sorted(by_kind.items()))
    else:
        out["null_false_alerts_per_100_site_months"] = None
    total = sum(res["alerts"] for res in results)
    out["precision_overall"] = sum(res["matched"] for res in results) / total if total else None
    out["alerts"] = total
    out["sites"] = results[0]["sites"] if results else 0
    out["incident_free_sites"] = results[0]["free_sites"] if results else 0
    out["days"] = results[0]["days"] if results else 0
    out["events_per_seed"] = statistics.mean(res["events"] for res in results) if results else 0
    return out


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _delay(s: dict[str, Any]) -> str:
    hours = s["median_delay_hours"]
    if hours is None:
        return "—"
    return f"{hours:.1f} h" if hours < 72 else f"{hours / 24:.1f} d"


def markdown(name: str, summary: dict[str, Any]) -> str:
    lines = [f"### {name}", "", "| incident | n | recall | precision | median delay | median delay (responses) |",
             "|---|---:|---:|---:|---:|---:|"]
    for kind, s in summary["incidents"].items():
        extra = f" ({_fmt(s['site_alerts_per_incident'], 1)} site alerts each)" if kind == "regional_drop" else ""
        lines.append(f"| {kind}{extra} | {s['count']} | {_fmt(s['recall'])} | {_fmt(s['precision'])} | "
                     f"{_delay(s)} | {_fmt(s['median_delay_responses'], 0)} |")
    if "eligible" in summary:
        for kind in ("step_drop", "gradual_decline"):
            s = summary["eligible"][kind]
            lines.append(f"| {kind}, eligible | {s['count']} | {_fmt(s['recall'])} | | {_delay(s)} | "
                         f"{_fmt(s['median_delay_responses'], 0)} |")
        lines += ["", f"Eligible: {summary['eligible']['rule']}."]
    null = summary.get("null_false_alerts_per_100_site_months")
    lines += ["", f"False attribute alerts per 100 site-months (incident-free sites): "
                  f"**{summary['false_alerts_per_100_site_months']:.2f}**; on the null replay (all sites): "
                  f"**{_fmt(null)}** {summary.get('null_alerts_by_kind', '')}; alerts opened: {summary['alerts']}; "
                  f"overall precision: {_fmt(summary['precision_overall'])}; {summary['sites']} sites "
                  f"({summary['incident_free_sites']} incident-free), {summary['days']:g} days, "
                  f"{summary['events_per_seed']:,.0f} events a seed", ""]
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


def generation_speed(args) -> dict[str, Any]:
    """Events per second of the simulator alone (messages generated, not decoded), per seed."""
    import time

    out = {}
    for seed in args.seeds:
        sim = Simulator(load_settings((args.config or [str(SHIPPED_CONFIG)])[0]), seed=seed, days=args.days,
                        profile=args.profile, sites=args.sites)
        began = time.perf_counter()
        n = sum(1 for _ in sim.messages())
        elapsed = time.perf_counter() - began
        out[seed] = {"events": n, "seconds": elapsed, "events_per_second": n / elapsed}
        print(f"{args.profile} seed {seed}: {n:,} events ({len(sim.profiles)} sites, {sim.days:g} days) "
              f"in {elapsed:.1f} s: {n / elapsed:,.0f} events/s")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo", help="the simulated network")
    parser.add_argument("--sites", type=int, default=None, help="retail/reviews: sites to generate (default: the profile's)")
    parser.add_argument("--config", action="append", default=None, help="a settings file (repeat to compare)")
    parser.add_argument("--detector", default="boucle", help=f"the detectors to measure (known: {', '.join(DETECTORS)})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--days", type=float, default=None, help="simulated days (default: the profile's)")
    parser.add_argument("--batch", type=int, default=200, help="messages per batch (bytewax hands over batches)")
    parser.add_argument("--grace", type=float, default=None,
                        help="hours after an incident's end still matched (default: demo 48, retail 168, reviews 720)")
    parser.add_argument("--no-null", dest="null", action="store_false", help="skip the null replay")
    parser.add_argument("--groups", nargs="+", default=[], metavar="SEEDS",
                        help="also summarise these groups of the seeds, e.g. 1-4 5-8")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=Path("var/detectors_benchmark"))
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes (no progress bar then)")
    parser.add_argument("--generate-only", action="store_true",
                        help="only time the simulator (events/s of generation), no detectors")
    args = parser.parse_args(argv)
    if args.generate_only:
        return generation_speed(args)
    if args.detector not in DETECTORS:
        parser.error(f"--detector {args.detector}: not available (known: {', '.join(DETECTORS)})")
    grace = GRACE_HOURS[args.profile] if args.grace is None else args.grace
    console = Console(width=160)
    summaries = {}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=not args.progress)
    with progress:
        for path in args.config or [str(SHIPPED_CONFIG)]:
            settings = load_settings(path)
            options = dict(profile=args.profile, sites=args.sites, detector=args.detector, null=args.null)
            if args.jobs > 1:
                from concurrent.futures import ProcessPoolExecutor

                with ProcessPoolExecutor(args.jobs) as pool:
                    futures = {seed: pool.submit(run_seed, settings, seed, args.days, args.batch, grace, **options)
                               for seed in args.seeds}
                    results = {seed: future.result() for seed, future in futures.items()}
            else:
                results = {seed: run_seed(settings, seed, args.days, args.batch, grace, progress=progress, **options)
                           for seed in args.seeds}
            title = f"{args.profile} — {path}"
            for text in args.groups:
                seeds = [seed for seed in _group(text) if seed in results]
                group = summarise([results[seed] for seed in seeds], args.profile)
                summaries[f"{Path(path).name} seeds {text}"] = group
                console.print(markdown(f"{title} — seeds {seeds}", group))
            summaries[Path(path).name] = summarise(list(results.values()), args.profile)
            console.print(markdown(f"{title} — seeds {args.seeds}{' (pooled)' if args.groups else ''}",
                                   summaries[Path(path).name]))
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
