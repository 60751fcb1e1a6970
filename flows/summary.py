"""The end-of-run summary: what was read, what was kept, what alerted, and how fast."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from boucle.config.redact import redact_url
from boucle.config.settings import Settings
from boucle.flows.stats import RunStats

__all__ = ["facts_table", "print_outputs", "print_scale_warnings", "print_summary", "site_day_table"]


def facts_table(title: str) -> Table:
    """A two-column table of labelled figures, as the run summaries print them."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    return table


def print_summary(
    console: Console, stats: RunStats, settings: Settings, warehouse: dict[str, int] | None = None,
    input_order: str | None = None,
) -> None:
    """The run's figures; ``input_order`` (a file's): how it was read, as it is or sorted by time."""
    names = {site.id: site.name for site in settings.sites}
    rate = stats.read / stats.elapsed if stats.elapsed else 0.0

    totals = facts_table("Run summary")
    if input_order:
        totals.add_row("input order", input_order)
    totals.add_row("events read", f"{stats.read:,}")
    totals.add_row("accepted", f"{stats.accepted:,}")
    totals.add_row("dead-lettered", f"{stats.rejected:,}")
    for reason, count in sorted(stats.rejected_by_reason.items()):
        totals.add_row(f"  {reason}", f"{count:,}")
    totals.add_row("late (kept raw, not windowed)", f"{stats.late:,}")
    totals.add_row("window rows", f"{stats.score_rows:,}")
    watched, series = stats.series_watched
    if series:  # the attribute alerts ran: say what they watch (the others are warming up)
        totals.add_row("series watched", f"{watched:,} of {series:,}")
    for kind, count in sorted(stats.alerts_by_kind.items()):
        totals.add_row(f"alerts: {kind}", f"{count:,}")
    for severity in ("critical", "high", "medium", "low"):
        if stats.alerts_by_severity.get(severity):
            totals.add_row(f"  {severity}", f"{stats.alerts_by_severity[severity]:,}")
    for (kind, status), count in sorted(stats.alert_states.items()):
        totals.add_row(f"  {kind} {status}" + (" (by its case)" if kind == "hot" else ""), f"{count:,}")
    totals.add_row("elapsed", f"{stats.elapsed:.1f} s ({rate:,.0f} events/s)")
    if warehouse:
        for table, count in warehouse.items():
            totals.add_row(f"warehouse {table}", f"{count:,}")
    console.print(totals)
    print_scale_warnings(console, stats, settings)

    if stats.hot_by_site_day or stats.held_by_site_day:
        console.print(site_day_table(stats, settings.hot_alerts.rate_cap.per_site_per_day, names))

    if stats.alerts_by_site:
        top = Table(title="Sites with most alerts", title_justify="left")
        top.add_column("site")
        top.add_column("name")
        top.add_column("alerts", justify="right")
        for site_id, count in stats.alerts_by_site.most_common(5):
            top.add_row(site_id, names.get(site_id, ""), f"{count:,}")
        console.print(top)


def site_day_table(stats: RunStats, cap: int, names: dict[str, str]) -> Table:
    """Hot alerts per site and UTC day (published, and held by the rate cap): what tuning the rules is about.

    >>> stats = RunStats()
    >>> stats.hot_by_site_day.update({("s1", "2026-10-01"): 12, ("s1", "2026-10-02"): 3, ("s2", "2026-10-01"): 1})
    >>> stats.held_by_site_day[("s1", "2026-10-01")] = 9
    >>> table = site_day_table(stats, 12, {"s1": "Lille"})
    >>> [row for row in zip(*(column._cells for column in table.columns))][-2:]
    [('site-days at the cap (held in digests)', '1 (9)'), ('busiest site-day (published + held)', 's1 Lille 2026-10-01: 21')]
    """
    days = set(stats.hot_by_site_day) | set(stats.held_by_site_day)
    per_day = sorted(stats.hot_by_site_day[d] + stats.held_by_site_day[d] for d in days)
    table = facts_table("Hot alerts per site and day (UTC)")
    table.add_row("site-days with hot alerts", f"{len(per_day):,}")
    table.add_row("per site-day: mean / median / 95th percentile",
                  f"{sum(per_day) / len(per_day):.1f} / {per_day[len(per_day) // 2]} / {per_day[int(0.95 * (len(per_day) - 1))]}")
    capped = sum(1 for d in days if stats.held_by_site_day[d])
    table.add_row("site-days at the cap (held in digests)" if cap else "rate cap",
                  f"{capped:,} ({sum(stats.held_by_site_day.values()):,})" if cap else "off")
    site, day = max(days, key=lambda d: (stats.hot_by_site_day[d] + stats.held_by_site_day[d], d))
    table.add_row("busiest site-day (published + held)",
                  f"{site} {names.get(site, '')} {day}: {stats.hot_by_site_day[site, day] + stats.held_by_site_day[site, day]}")
    return table


def print_scale_warnings(console: Console, stats: RunStats, settings: Settings) -> None:
    """One line per question whose answers never reached the upper half of its scale."""
    questions = settings.questions()
    keys = {**{a.name: f"attributes[{i}]" for i, a in enumerate(settings.attributes)},
            **{name: f"scores.{name}" for name in settings.scores}}
    for name, n in sorted(stats.unused_upper_half.items()):
        scale = questions[name]
        console.print(
            f"warning: {keys[name]}: none of the {n:,} answers to {name} is above {(scale.min + scale.max) / 2:g},"
            f" the middle of its scale {scale.min}..{scale.max}: were they given on another scale?",
            markup=False, highlight=False, soft_wrap=True,
        )


def print_outputs(console: Console, settings: Settings) -> None:
    """The last line of a run: where its outputs are (a password in ``warehouse.url`` masked)."""
    out = settings.outputs
    console.print(
        f"Alerts: {out.alerts_jsonl} · dead letters: {out.dead_letters_jsonl} · warehouse: "
        f"{redact_url(settings.warehouse.url or settings.warehouse.path)}"
        " (try `boucle query \"SELECT count() FROM feedback\"`)",
        markup=False, highlight=False,
    )
