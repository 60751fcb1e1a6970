"""The least delay any detector can have on a profile's eligible step drops, at the false-alarm target.

    python benchmarks/delay_bound.py --profile retail --sites 500 --days 90 --seeds 1
    python benchmarks/delay_bound.py --profile reviews --seeds 1 2 --json var/bound-reviews.json

A detector that raises at most ``F`` false alerts per 100 site-months on a site with ``S`` watched
series must give each series an in-control run length of at least ``N = S · 100 months · r / F``
responses (``r``: the series' responses a month). Lorden's bound: to detect a shift whose
Kullback-Leibler information is ``I`` nats per response, any such detector needs about
``ln(N) / I`` responses after the change (worst case, asymptotically; the CUSUM attains it). For a
drop of ``δ`` standard deviations of normal ratings ``I = δ² / 2``; ratings are few categories and
clipped, so the script uses the information of the ratings themselves: the Kullback-Leibler
divergence of their histogram during the drop from the one before it (add-½ smoothing).

Read the figure as an order of magnitude, not a wall: the bound is asymptotic (large run lengths)
and for the worst case of the change time, and from the ~15 ratings of a thin site's drop the
smoothed histogram understates their information. On ``reviews`` the shipped detectors beat it
(8 responses against ~14); on ``retail``, where a drop holds 40-200 ratings, they sit at it.

For each eligible step drop of the simulated network (the profile's rule, as in
``benchmarks/detectors.py``), the script measures the site's rate and rating sd on the attribute
before the drop, and prints the bound in responses and in days; the median over incidents is the
figure to hold a measured median delay against. Nothing here runs a detector.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.operators.decode import Decoder
from boucle.sources.simulator import Simulator
from boucle.sources.simulator.networks import PROFILES
from detectors import DAY_MS, _events, eligible

MONTH_DAYS = 30.44


def information(during: list[float], before: list[float]) -> float:
    """Kullback-Leibler divergence (nats) of the ratings ``during`` a change from those ``before`` it.

    >>> round(information([1, 2, 2, 3] * 10, [3, 4, 4, 5] * 10), 2)
    2.46
    >>> information([4, 4, 5], [4, 5, 4])
    0.0
    """
    values = sorted(set(during) | set(before))
    p = np.array([during.count(v) for v in values], dtype=float) + 0.5
    q = np.array([before.count(v) for v in values], dtype=float) + 0.5
    p, q = p / p.sum(), q / q.sum()
    return max(float(np.sum(p * np.log(p / q))), 0.0)


def bound(info: float, per_day: float, series: int, false_per_100: float) -> tuple[float, float]:
    """(responses, days) Lorden's bound asks of a change of ``info`` nats per response.

    >>> n, days = bound(0.5, per_day=1.0, series=1, false_per_100=1.0)
    >>> round(n, 1), round(days, 1)    # ln(3044) / 0.5
    (16.0, 16.0)
    """
    run_length = series * 100 * MONTH_DAYS * per_day / false_per_100
    n = math.log(max(run_length, math.e)) / info
    return n, n / per_day


def measure(settings, profile: str, seed: int, days: float | None, sites: int | None,
            false_per_100: float) -> list[dict]:
    sim = Simulator(settings, seed=seed, days=days, malformed_share=0.0, profile=profile, sites=sites)
    ratings: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)

    def collect(event):
        for name, value in event.attributes.items():
            ratings[(event.site_id, name)].append((event.ts_ms, float(value)))
        for name, value in event.scores.items():
            ratings[(event.site_id, name)].append((event.ts_ms, float(value)))
        return None

    for _ in _events(sim, Decoder(sim.settings), 1000, lambda n: None, collect):
        pass
    series_of: dict[str, int] = defaultdict(int)
    for (site, _), values in ratings.items():
        series_of[site] += len(values) >= 40  # enough for a series to be watched within the run
    daily = {p.site_id: p.daily_mean * sim.volume_scale for p in sim.profiles}
    rows = []
    for inc in sim.incidents:
        if inc.kind != "step_drop" or not eligible(inc, sim.network.name, daily):
            continue
        before = sorted(v for v in ratings[(inc.site_id, inc.attribute)] if v[0] < inc.start_ms)
        if len(before) < 10:
            continue
        span_days = (before[-1][0] - before[0][0]) / DAY_MS
        per_day = (len(before) - 1) / span_days
        reference = [x for _, x in before[-200:]]
        during = [x for t, x in ratings[(inc.site_id, inc.attribute)] if inc.start_ms <= t <= inc.end_ms]
        if len(during) < 5:
            continue
        sd = float(np.std(reference))
        info = information(during, reference)
        normal = bound((inc.magnitude / sd) ** 2 / 2, per_day, max(series_of[inc.site_id], 1), false_per_100)
        n, d = bound(info, per_day, max(series_of[inc.site_id], 1), false_per_100) if info > 0 else (math.inf,) * 2
        rows.append({"site": inc.site_id, "magnitude": inc.magnitude, "sd": sd, "per_day": per_day,
                     "series": series_of[inc.site_id], "information": info, "bound_responses": n, "bound_days": d,
                     "normal_bound_responses": normal[0]})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="retail")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--days", type=float, default=None, help="simulated days (default: the profile's)")
    parser.add_argument("--sites", type=int, default=None, help="sites to generate (default: the profile's)")
    parser.add_argument("--false-per-100", type=float, default=1.0, help="false alerts per 100 site-months allowed")
    parser.add_argument("--config", default=str(SHIPPED_CONFIG))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    settings = load_settings(args.config)
    rows = [r for seed in args.seeds
            for r in measure(settings, args.profile, seed, args.days, args.sites, args.false_per_100)]
    if not rows:
        parser.error(f"no eligible step drop on {args.profile} with these seeds")
    out = {"profile": args.profile, "seeds": args.seeds, "incidents": len(rows),
           "false_alerts_per_100_site_months": args.false_per_100,
           "median_bound_responses": statistics.median(r["bound_responses"] for r in rows),
           "median_bound_days": statistics.median(r["bound_days"] for r in rows),
           "median_magnitude_sd": statistics.median(r["magnitude"] / r["sd"] for r in rows),
           "median_per_day": statistics.median(r["per_day"] for r in rows),
           "median_series": statistics.median(r["series"] for r in rows),
           "median_information": statistics.median(r["information"] for r in rows),
           "median_normal_bound_responses": statistics.median(r["normal_bound_responses"] for r in rows)}
    print(f"{args.profile}, seeds {args.seeds}: {len(rows)} eligible step drops; median drop "
          f"{out['median_magnitude_sd']:.2f} sd at {out['median_per_day']:.2f} responses a day, "
          f"{out['median_series']:.0f} watched series a site; {out['median_information']:.2f} nats a response "
          f"(normal approximation: {out['median_normal_bound_responses']:.0f} responses)")
    print(f"at <= {args.false_per_100:g} false alert per 100 site-months no detector sees the median one in fewer "
          f"than ~{out['median_bound_responses']:.0f} responses (median {out['median_bound_days']:.1f} days; "
          "Lorden's bound on the ratings' own information)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
