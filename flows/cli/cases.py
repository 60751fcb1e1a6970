"""``boucle cases …``: the loop's KPIs per site, non-respondents, promoters to thank, comment search.

Everything reads the warehouse views of migration v0005 (``v_case_kpis``, ``v_invitations``,
``v_promoters``, ``comment_themes``); :func:`print_loop_summary` is also the loop part of the
end-of-run summary.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from boucle.config.settings import Settings, parse_duration
from boucle.flows.cli.common import FORMAT, console, err, load, read_client
from boucle.flows.cli.render import RowFormat, print_rows, rows_table
from boucle.flows.summary import facts_table

__all__ = ["cases_app", "consented_only", "loop_totals", "print_loop_summary", "site_kpis", "themes_off",
           "top_themes"]

cases_app = typer.Typer(help="Closing the loop: case KPIs, non-respondents, promoters, comment search.",
                        no_args_is_help=True)


OUT = typer.Option(None, "--out", "-o", help="Write json/csv to this file instead of standard output.")


@contextmanager
def _output(out: Path | None):
    """Standard output, or ``out`` opened for writing (its folder created)."""
    if out is None:
        yield sys.stdout
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        yield handle


def _export(columns, rows, format: RowFormat, out: Path | None, title: str) -> None:
    """``rows`` as a titled table on the console, or as JSON lines / CSV (to ``out`` when given)."""
    if format is RowFormat.table and out is None:
        console.print(rows_table(columns, rows, title=title))
        return
    chosen = RowFormat.csv if format is RowFormat.table else format  # -o alone: CSV, the spreadsheet's format
    with _output(out) as handle:
        print_rows(columns, rows, chosen.value, console, handle)
    if out is not None:
        err.print(f"{len(rows):,} rows → {out}", markup=False, highlight=False)


def consented_only(columns, rows, contact_columns=("customer_id",)) -> list[tuple]:
    """``rows`` with the contact columns blanked wherever ``consent_contact`` is not 1: only a customer
    who consented carries contact details out of Boucle.

    >>> consented_only(["customer_id", "consent_contact"], [("c1", 1), ("c2", 0)])
    [('c1', 1), ('', 0)]
    """
    if not rows:  # an empty result may come without its column names
        return []
    consent = list(columns).index("consent_contact")
    hidden = [i for i, c in enumerate(columns) if c in contact_columns]
    return [tuple("" if i in hidden and row[consent] != 1 else v for i, v in enumerate(row)) for row in rows]


def _client(settings: Settings):
    """Read-only: no command of this group (nor the loop summary of a run) writes. A warehouse
    without the views is one line saying to run ``boucle db migrate``."""
    from boucle.config.redact import redact_url
    from boucle.sinks.clickhouse.schema import check_schema

    client, warehouse = read_client(settings), settings.warehouse
    check_schema(client, warehouse.database, redact_url(warehouse.url or warehouse.path))
    return client


def _dicts(result) -> list[dict[str, Any]]:
    return [dict(zip(result.column_names, row)) for row in result.result_rows]


def site_kpis(client, db: str, region: str | None = None) -> list[dict[str, Any]]:
    """One dict per site: the columns of ``v_case_kpis``."""
    where = "WHERE region = {region:String}" if region else ""
    return _dicts(client.query(f"SELECT * FROM `{db}`.v_case_kpis {where} ORDER BY region, site_id",
                               parameters={"region": region or ""}))


def loop_totals(client, db: str, region: str | None = None, after_days: float = 3.0) -> dict[str, Any]:
    """Network (or region) totals: case KPIs over all cases, response rate, non-respondents, promoters."""
    where = "WHERE region = {region:String}" if region else ""
    params = {"region": region or "", "after": after_days}
    names = ("cases", "contacted", "fcr", "decided", "untreated", "escalated", "resolved", "sla_alerts",
             "history", "hours_mean", "hours_median")
    row = client.query(
        f"""SELECT count(), countIf(contacted = 1), countIf(fcr = 1), countIf(sla_decided = 1),
                   countIf(untreated = 1), countIf(escalated = 1), countIf(resolved = 1), countIf(sla_alerted = 1),
                   countIf(outcome_unknown = 1),
                   avgIf(dateDiff('second', opened_at, first_contact_at) / 3600, contacted = 1),
                   medianIf(dateDiff('second', opened_at, first_contact_at) / 3600, contacted = 1)
            FROM `{db}`.cases FINAL {where}""", parameters=params).result_rows[0]
    cases = dict(zip(names, row))
    invitations = _dicts(client.query(
        f"""SELECT count() AS invitations, countIf(responded) AS responses,
                   countIf(NOT responded AND days_waiting >= {{after:Float64}}) AS non_respondents,
                   countIf(NOT responded AND days_waiting >= {{after:Float64}} AND consent_contact = 1)
                       AS non_respondents_consenting
            FROM `{db}`.v_invitations {where}""", parameters=params))[0]
    promoters = client.query(f"SELECT count() FROM `{db}`.v_promoters {where}", parameters=params).result_rows[0][0]
    out = {**cases, **invitations, "promoters_consenting": promoters}
    out["contacted_share"] = _ratio(out["contacted"], out["cases"])
    out["fcr_rate"] = _ratio(out["fcr"], out["contacted"])
    out["untreated_rate"] = _ratio(out["untreated"], out["decided"])
    out["escalation_rate"] = _ratio(out["escalated"], out["cases"])
    out["response_rate"] = _ratio(out["responses"], out["invitations"])
    return out


def top_themes(client, db: str, k: int = 5, region: str | None = None) -> list[tuple[str, int, float]]:
    """``[(theme, comments with it, share of all comments)]``, most frequent first."""
    where = "AND region = {region:String}" if region else ""
    params = {"region": region or "", "k": k}
    total = client.query(f"SELECT countIf(comment != '') FROM `{db}`.feedback WHERE 1 {where}",
                         parameters=params).result_rows[0][0]
    rows = client.query(
        f"SELECT theme, sum(n) AS n FROM `{db}`.comment_themes FINAL WHERE 1 {where}"
        " GROUP BY theme ORDER BY n DESC, theme LIMIT {k:UInt32}", parameters=params).result_rows
    return [(theme, int(n), n / total if total else math.nan) for theme, n in rows]


def _plain(value):
    """NaN (a rate of no cases) as an empty cell: JSON has no NaN, and a spreadsheet reads it as text."""
    return None if isinstance(value, float) and math.isnan(value) else value


def _ratio(a, b) -> float:
    return a / b if b else math.nan


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _hours(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f} h"


def themes_off(settings: Settings) -> str | None:
    """Why comments are not themed (one line), or None when they are."""
    if not settings.themes.enabled:
        return "Comment themes: off (themes.enabled = false)."
    if not settings.theme_lexicons():
        return ("Comment themes: none. No attribute of the catalogue declares complaints (complaints.<language>"
                " = [...] under [[attributes]]) and [themes.lexicons] is empty, so comments are not themed.")
    return None


def print_loop_summary(console: Console, settings: Settings, region: str | None = None,
                       history_before_ms: int = 0) -> None:
    """The loop part of a run summary: FCR, untreated rate, response rate, top comment themes.
    ``history_before_ms``: a replay that kept history as history (the cases it judged so are counted)."""
    client, db = _client(settings), settings.warehouse.database
    after = settings.cases.non_respondent_after.total_seconds() / 86400
    t = loop_totals(client, db, region, after)
    table = facts_table("Closing the loop")
    table.add_row("hot alerts with a case", f"{t['cases']:,}")
    table.add_row("contacted", f"{t['contacted']:,} ({_pct(t['contacted_share'])})")
    table.add_row("time to first contact (mean / median)", f"{_hours(t['hours_mean'])} / {_hours(t['hours_median'])}")
    table.add_row("FCR rate (resolved at first contact / contacted)", _pct(t["fcr_rate"]))
    sla = settings.cases.sla.total_seconds() / 3600
    table.add_row(f"untreated rate (no action within {sla:g} h)", f"{_pct(t['untreated_rate'])} of {t['decided']:,} due")
    table.add_row("escalations", f"{t['escalated']:,} ({_pct(t['escalation_rate'])})")
    table.add_row("case_sla alerts (to site managers)", f"{t['sla_alerts']:,}")
    if history_before_ms or t["history"]:
        from boucle.config.times import iso_ms

        since = f" (deadline before {iso_ms(history_before_ms)[:16]}Z, the replay's start)" if history_before_ms else ""
        table.add_row(f"history: outcome unknown, no case_sla alert{since}", f"{t['history']:,}")
    table.add_row("invitations → responses", f"{t['invitations']:,} → {t['responses']:,}")
    table.add_row("response rate", _pct(t["response_rate"]))
    table.add_row(f"non-respondents after {after:g} d (consenting)",
                  f"{t['non_respondents']:,} ({t['non_respondents_consenting']:,})")
    table.add_row("promoters to thank (consenting)", f"{t['promoters_consenting']:,}")
    console.print(table)
    if history_before_ms:
        console.print(
            f"Replayed as history: {t['history']:,} cases whose SLA deadline had passed before the replay started"
            " are stored with their outcome unknown (cases.outcome_unknown), and no case_sla alert was raised"
            " for them; `boucle replay FILE --sla-alerts-for-history` raises them.", markup=False, highlight=False)
    unthemed = themes_off(settings)
    if unthemed:
        console.print(unthemed, markup=False, highlight=False)
        return
    themes = top_themes(client, db, 5, region)
    if themes:
        console.print(rows_table(
            ["theme", "comments", "share of comments"], [(theme, f"{n:,}", _pct(share)) for theme, n, share in themes],
            title="Top comment themes (complaints)", justify={"comments": "right", "share of comments": "right"},
        ))


@cases_app.command("summary")
def summary(region: Optional[str] = typer.Option(None, help="Only this region (id from the config)."),
            format: RowFormat = FORMAT, out: Optional[Path] = OUT) -> None:
    """The loop's KPIs per site: contacted share, time to first contact, FCR, untreated, escalations.

    Example: `boucle cases summary --region ile-de-france` · `boucle cases summary --format csv -o kpis.csv`
    """
    settings = load()
    if region and region not in {r.id for r in settings.regions}:
        err.print(f"unknown region {region!r}; one of {', '.join(r.id for r in settings.regions)}")
        raise typer.Exit(2)
    client, db = _client(settings), settings.warehouse.database
    if format is not RowFormat.table or out is not None:  # the columns of v_case_kpis, unformatted
        kpis = site_kpis(client, db, region)
        columns = list(kpis[0]) if kpis else ["site_id"]
        _export(columns, [tuple(_plain(r[c]) for c in columns) for r in kpis], format, out, "")
        return
    names = ("site", "name", "region", "cases", "contacted", "1st contact", "FCR", "untreated", "escalated", "pending")
    rows = [
        (r["site_id"], r["site_name"], r["region"], f"{r['cases']:,}", _pct(r["contacted_share"]),
         _hours(r["median_hours_to_first_contact"]), _pct(r["fcr_rate"]), _pct(r["untreated_rate"]),
         _pct(r["escalation_rate"]), f"{r['pending_cases']:,}")
        for r in site_kpis(client, db, region)
    ]
    console.print(rows_table(names, rows, title=f"Cases per site{f' ({region})' if region else ''}",
                             justify={name: "right" for name in names[3:]}))
    print_loop_summary(console, settings, region)


@cases_app.command("non-respondents")
def non_respondents(
    after: str = typer.Option(None, help="Unanswered for at least this long (default: cases.non_respondent_after)."),
    site: Optional[str] = typer.Option(None, help="Only this site."),
    all_customers: bool = typer.Option(False, "--all", help="Also customers who did not consent to be contacted."),
    limit: int = typer.Option(20, min=1, help="At most this many rows."),
    format: RowFormat = FORMAT, out: Optional[Path] = OUT,
) -> None:
    """Invitations still unanswered after N days: customers to contact (consenting ones by default;
    with --all the others are listed without their customer id).

    Example: `boucle cases non-respondents --after 5d --site store-0001` · `... --format json -o todo.jsonl`
    """
    settings = load()
    try:
        days = parse_duration(after or settings.cases.non_respondent_after).total_seconds() / 86400
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--after") from None
    conditions = ["NOT responded", "days_waiting >= {after:Float64}"]
    if site:
        conditions.append("site_id = {site:String}")
    if not all_customers:
        conditions.append("consent_contact = 1")
    client, db = _client(settings), settings.warehouse.database
    result = client.query(
        f"SELECT invitation_id, sent_at, site_id, channel, customer_id, consent_contact, round(days_waiting, 1) AS days"
        f" FROM `{db}`.v_invitations WHERE {' AND '.join(conditions)} ORDER BY sent_at LIMIT {{limit:UInt32}}",
        parameters={"after": days, "site": site or "", "limit": limit},
    )
    _export(result.column_names, consented_only(result.column_names, result.result_rows), format, out,
            f"Non-respondents after {days:g} days")


@cases_app.command("promoters")
def promoters(
    site: Optional[str] = typer.Option(None, help="Only this site."),
    limit: int = typer.Option(20, min=1, help="At most this many rows."),
    format: RowFormat = FORMAT, out: Optional[Path] = OUT,
) -> None:
    """Promoters (NPS 9-10) who consented to be contacted: thank them, ask for a referral.

    Example: `boucle cases promoters --format csv -o promoters.csv`
    """
    settings = load()
    client, db = _client(settings), settings.warehouse.database
    result = client.query(
        f"SELECT occurred_at, site_id, customer_id, 1 AS consent_contact, nps, comment FROM `{db}`.v_promoters"
        f" {'WHERE site_id = {site:String}' if site else ''} ORDER BY occurred_at DESC LIMIT {{limit:UInt32}}",
        parameters={"site": site or "", "limit": limit},
    )
    _export(result.column_names, consented_only(result.column_names, result.result_rows), format, out,
            "Promoters to thank (consenting)")


@cases_app.command("search")
def search(
    word: str = typer.Argument(..., help="One word (token) to find in comments, any case."),
    site: Optional[str] = typer.Option(None, help="Only this site."),
    limit: int = typer.Option(20, min=1, help="At most this many rows."),
) -> None:
    """Find comments containing a word (uses the comment token index; comments are PII-masked).

    Example: `boucle cases search attente --site store-0001`
    """
    settings = load()
    client, db = _client(settings), settings.warehouse.database
    result = client.query(
        f"SELECT occurred_at, site_id, scores['nps'] AS nps, comment FROM `{db}`.feedback"
        f" WHERE hasToken(lower(comment), lower({{word:String}})) {'AND site_id = {site:String}' if site else ''}"
        " ORDER BY occurred_at DESC LIMIT {limit:UInt32}",
        parameters={"word": word, "site": site or "", "limit": limit},
    )
    console.print(rows_table(result.column_names, result.result_rows, title=f"Comments with {word!r}"))
