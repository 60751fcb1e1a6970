"""The share of responses each hot-alert rule fires on, over the simulation `boucle run` processes.

Every rule is evaluated on its own on each accepted response of the default simulation (the config's
``simulation`` section: same sites, seed and days as `boucle run`), so the shares overlap; then
what a programme receives: responses matching any rule, hot alerts after the per-customer
cooldown, and those published one by one under the per-site rate cap (the rest go in digests).
Prints a Markdown table (the README's "Fewer, better alerts" quotes it).

    python benchmarks/hot_rules.py
    python benchmarks/hot_rules.py --days 7 --seed 3 --config my.toml --cap 20
"""

from __future__ import annotations

import argparse
from collections import Counter

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.config.times import DAY_MS
from boucle.operators.decode import Decoder
from boucle.operators.hot_rules import HotRules
from boucle.sources.simulator import Simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(SHIPPED_CONFIG), help="settings file (default: the shipped one)")
    parser.add_argument("--days", type=float, default=None, help="simulated days (default: simulation.days)")
    parser.add_argument("--seed", type=int, default=None, help="simulator seed (default: simulation.seed)")
    parser.add_argument("--cap", type=int, default=None, help="hot_alerts.rate_cap.per_site_per_day to try (0: none)")
    args = parser.parse_args()

    settings = load_settings(args.config)
    simulator = Simulator(settings, seed=args.seed, days=args.days)
    settings = simulator.settings
    decoder, rules = Decoder(settings), HotRules(settings)
    severity = {rule.name: rule.severity for rule in settings.hot_alerts.rules}
    cooldown_ms = int(settings.hot_alerts.cooldown.total_seconds() * 1000)
    cap = settings.hot_alerts.rate_cap
    if args.cap is not None:
        cap = cap.model_copy(update={"per_site_per_day": args.cap})

    fired, accepted, any_rule, alerts, published = Counter(), 0, 0, 0, 0
    last_alert: dict[tuple[str, str], int] = {}
    per_site_day: Counter = Counter()
    events = sorted(decoder.decode_many(list(simulator.messages())).accepted, key=lambda e: e.ts_ms)
    for event in events:
        accepted += 1
        matched = rules.matches(event.scores, event.attributes, event.comment, event.channel)
        fired.update(name for name, _ in matched)
        if not matched:
            continue
        any_rule += 1
        customer = event.customer.get("id")
        if customer:  # the cooldown of operators.hot_alerts: one call back per customer and site
            previous = last_alert.get((event.site_id, customer))
            if previous is not None and 0 <= event.ts_ms - previous < cooldown_ms:
                continue
            last_alert[(event.site_id, customer)] = event.ts_ms
        alerts += 1
        top = max((s for _, s in matched), key=["low", "medium", "high", "critical"].index)
        key = (event.site_id, event.ts_ms // DAY_MS)
        if not cap.per_site_per_day or top in cap.exempt or per_site_day[key] < cap.per_site_per_day:
            published += 1
            if cap.per_site_per_day and top not in cap.exempt:
                per_site_day[key] += 1

    pct = lambda n: f"{100 * n / accepted:.1f} %" if accepted else "n/a"  # noqa: E731
    print(f"{accepted:,} accepted responses ({simulator.days:g} days, {len(settings.sites)} sites, seed {simulator.seed})\n")
    print("| rule | severity | responses it fires on | share |")
    print("|---|---|---:|---:|")
    for rule in settings.hot_alerts.rules:
        print(f"| `{rule.name}` | {severity[rule.name]} | {fired[rule.name]:,} | {pct(fired[rule.name])} |")
    print(f"| any rule | | {any_rule:,} | {pct(any_rule)} |")
    print(f"| hot alerts (after the {cooldown_ms / 3_600_000:g} h per-customer cooldown) | | {alerts:,} | {pct(alerts)} |")
    print(f"| published one by one (rate cap {cap.per_site_per_day}/site/day, exempt: {', '.join(cap.exempt) or '-'})"
          f" | | {published:,} | {pct(published)} |")


if __name__ == "__main__":
    main()
