"""``boucle registry check``: load the entity registry (TOML and CSV files), check it, summarise it.

A registry that does not load exits with code 2 and one line per problem (file, row, column);
one that loads prints its sites per region, country and kind, its languages and time zones, and what is missing
(sites without a time zone, whose days are UTC days; sites without an owner; regions without a
manager or without sites).
"""

from __future__ import annotations

from collections import Counter

import typer
from rich.table import Table

from boucle.config.settings import Settings
from boucle.flows.cli.common import console, load
from boucle.flows.summary import facts_table

__all__ = ["registry_app", "registry_facts"]

registry_app = typer.Typer(help="The entity registry: sites and regions (TOML and CSV files).", no_args_is_help=True)

_SHOWN = 10  # ids listed for a missing field; the count says how many in all


def registry_facts(settings: Settings) -> dict[str, Counter | list[str]]:
    """Counts of the registry by region, country, kind and language, and the ids missing something.

    >>> from boucle.config.loader import settings_from_dict
    >>> facts = registry_facts(settings_from_dict({"regions": [{"id": "n"}, {"id": "s", "manager": "m@x"}],
    ...     "sites": [{"id": "a", "region": "n", "owner": "o@x"}, {"id": "b", "region": "n", "country": "FR"}]}))
    >>> facts["region"], facts["no owner"], facts["region without sites"], facts["region without manager"]
    (Counter({'n': 2}), ['b'], ['s'], ['n'])
    >>> facts["time zone"], facts["no time zone"]  # b's country keeps one time: its zone; a has none
    (Counter({'UTC (none given)': 1, 'Europe/Paris': 1}), ['a'])
    """
    sites = settings.sites
    used = {s.region for s in sites}
    zones = settings.site_zones()
    return {
        "region": Counter(s.region for s in sites),
        "country": Counter(s.country or "(none)" for s in sites),
        "kind": Counter(s.kind for s in sites),
        "language": Counter(s.language for s in sites),
        "time zone": Counter(zones[s.id] or "UTC (none given)" for s in sites),
        "no time zone": [s.id for s in sites if not zones[s.id]],
        "no owner": [s.id for s in sites if not s.owner],
        "no manager": [s.id for s in sites if not s.manager],
        "region without sites": [r.id for r in settings.regions if r.id not in used],
        "region without manager": [r.id for r in settings.regions if not r.manager],
    }


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:_SHOWN]) + (", ..." if len(ids) > _SHOWN else "")


@registry_app.command("check")
def check() -> None:
    """Load the registry of the config (its `[[sites]]`, `[[regions]]` and the CSV files of
    `[registry]`), refuse it with file, row and column if it is wrong, else summarise it.

    Example: `boucle registry check --config config/examples/network.toml`
    """
    settings = load()
    facts = registry_facts(settings)
    registry = settings.registry
    totals = facts_table("Registry")
    totals.add_row("sites", f"{len(settings.sites):,}")
    totals.add_row("regions", f"{len(settings.regions):,}")
    for label, path in (("sites file", registry.sites_csv), ("regions file", registry.regions_csv)):
        if path:
            totals.add_row(label, path)
    missing = ("no time zone", "no owner", "no manager", "region without sites", "region without manager")
    for label in missing:
        totals.add_row(label, f"{len(facts[label]):,}")
    console.print(totals)
    for label in missing:  # one line each, not wrapped, so a script can pick the ids up
        if facts[label]:
            console.print(f"{label} ({len(facts[label]):,}): {_ids(facts[label])}",
                          markup=False, highlight=False, soft_wrap=True)

    names = {r.id: r.name for r in settings.regions}
    regions = Table(title="Sites per region", title_justify="left")
    for column in ("region", "name", "sites"):
        regions.add_column(column, justify="right" if column == "sites" else "left")
    for region, count in sorted(facts["region"].items()):
        regions.add_row(region, names.get(region, ""), f"{count:,}")
    console.print(regions)
    for label in ("country", "kind", "language", "time zone"):
        table = Table(title=f"Sites per {label}", title_justify="left")
        table.add_column(label)
        table.add_column("sites", justify="right")
        for value, count in facts[label].most_common():
            table.add_row(value, f"{count:,}")
        console.print(table)
    console.print(f"registry ok: {len(settings.sites):,} sites in {len(facts['region']):,} regions")
