"""Load and check the configuration; a bad file fails at start with the path of the bad key.

>>> settings_from_dict({"sites": [{"id": "s1", "region": "north"}]})
Traceback (most recent call last):
...
boucle.config.loader.ConfigError: <dict>: sites[0].region: unknown region 'north' (known: none)
>>> settings_from_dict({})
Traceback (most recent call last):
...
boucle.config.loader.ConfigError: <dict>: sites: at least one site is required ([[sites]] with id and region, or [registry] sites_csv; see the shipped boucle.toml)
"""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from boucle.config.registry import CsvOrigin, RegistryError, read_registry
from boucle.config.settings import CHANNELS, Registry, Settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "default_config_path", "load_settings", "settings_from_dict"]

# The demo network, shipped inside the package (a wheel runs from any directory).
SHIPPED_CONFIG = Path(str(resources.files("boucle.config").joinpath("boucle.toml")))


class ConfigError(Exception):
    """A configuration problem, with where it is (file and key path) and why."""


def default_config_path() -> Path:
    """``$BOUCLE_CONFIG``, else ``./config/boucle.toml``, else the one shipped with the code."""
    if env := os.environ.get("BOUCLE_CONFIG"):
        return Path(env)
    local = Path("config/boucle.toml")
    return local if local.exists() else SHIPPED_CONFIG


def load_settings(path: str | Path | None = None) -> Settings:
    path = Path(path) if path else default_config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return settings_from_dict(data, source=str(path), base=path.parent)


def settings_from_dict(data: dict[str, Any], source: str = "<dict>", base: Path | None = None) -> Settings:
    """Settings from parsed TOML; ``base``: where the ``[registry]`` CSV files are (default: the
    current directory)."""
    data, origins = _with_registry_files(data, source, base or Path.cwd())
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, data, source)) from None
    problems = list(_reference_problems(settings, origins))
    if problems:
        raise ConfigError("\n".join(f"{source}: {where}: {why}" for where, why in problems))
    return settings


def _with_registry_files(
    data: dict[str, Any], source: str, base: Path
) -> tuple[dict[str, Any], dict[tuple[str, int], CsvOrigin]]:
    """``data`` with the rows of the registry's CSV files after its own sites and regions, and
    where each of those came from (by ``("sites" | "regions", index)``)."""
    if not data.get("registry"):
        return data, {}
    try:
        registry = Registry.model_validate(data["registry"])
    except ValidationError as exc:
        raise ConfigError("\n".join(
            f"{source}: {_path(['registry', *e['loc']])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors())) from None
    try:
        files = dict(zip(("regions", "sites"), read_registry(registry, base)))
    except RegistryError as exc:
        raise ConfigError("\n".join(f"{source}: registry: {line}" for line in str(exc).splitlines())) from None
    data, origins = dict(data), {}
    for key, rows in files.items():
        own = data.get(key, [])
        if rows and isinstance(own, list):  # not a list: left for the model to refuse with its key
            origins.update({(key, len(own) + i): origin for i, (_, origin) in enumerate(rows)})
            data[key] = [*own, *(entry for entry, _ in rows)]
    return data, origins


def _path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker of a bad dict key: the key itself is the last part already
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _format(exc: ValidationError, data: dict[str, Any], source: str) -> str:
    lines = []
    for err in exc.errors():
        # Errors raised in a model validator point at the model; say which entry it was.
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {_path(err['loc'])}: {message}")
    return "\n".join(lines)


def _known(values: Iterable[str]) -> str:
    values = sorted(values)
    return ", ".join(values) if values else "none"


def _reference_problems(settings: Settings, origins: dict[tuple[str, int], CsvOrigin] | None = None):
    if not settings.sites:
        # Without a registry every event is dead-lettered (unknown_site): refuse to start instead.
        yield "sites", ("at least one site is required ([[sites]] with id and region, or [registry] sites_csv;"
                        " see the shipped boucle.toml)")
    origins = origins or {}

    def key(section: str, i: int, field: str) -> str:  # a CSV entry is named by its file, row and column
        origin = origins.get((section, i))
        return f"registry: {origin.where(field)}" if origin else f"{section}[{i}].{field}"

    regions = {r.id for r in settings.regions}
    seen_regions: set[str] = set()
    for i, region in enumerate(settings.regions):
        if region.id in seen_regions:
            yield key("regions", i, "id"), f"duplicate region id {region.id!r}"
        seen_regions.add(region.id)
    seen_sites: set[str] = set()
    for i, site in enumerate(settings.sites):
        if site.region not in regions:
            yield key("sites", i, "region"), f"unknown region {site.region!r} (known: {_known(regions)})"
        if site.id in seen_sites:
            yield key("sites", i, "id"), f"duplicate site id {site.id!r}"
        seen_sites.add(site.id)
    names = [a.name for a in settings.attributes]
    for i, name in enumerate(names):
        if name in names[:i] or name in settings.scores:
            yield f"attributes[{i}].name", f"duplicate question name {name!r}"
    questions = settings.questions()
    alerts = settings.attribute_alerts
    # The default ("nps") may name nothing on a network without NPS; a target someone wrote must exist.
    if "importance_target" in alerts.model_fields_set and alerts.importance_target not in questions:
        yield ("attribute_alerts.importance_target",
               f"unknown question {alerts.importance_target!r} (known: {_known(questions)})")
    for d, entry in enumerate(settings.attribute_alerts.detectors):
        for q, name in enumerate(entry.questions):
            if name != "*" and name not in questions:
                yield (f"attribute_alerts.detectors[{d}].questions[{q}]",
                       f"unknown question {name!r} (known: {_known(questions)}, or '*' for every one)")
    keywords = settings.hot_alerts.keywords
    for r, rule in enumerate(settings.hot_alerts.rules):
        for c, cond in enumerate(rule.all):
            where = f"hot_alerts.rules[{r}].all[{c}]"
            if cond.score is not None and cond.score not in settings.scores:
                yield f"{where}.score", f"unknown score {cond.score!r} (known: {_known(settings.scores)})"
            if cond.attribute is not None and cond.attribute not in names:
                yield f"{where}.attribute", f"unknown attribute {cond.attribute!r} (known: {_known(names)})"
            name = cond.score or cond.attribute
            if name in questions:
                scale = questions[name]
                for bound in ("min", "max"):
                    value = getattr(cond, bound)
                    if value is not None and not scale.min <= value <= scale.max:
                        yield f"{where}.{bound}", f"{value} is outside the {name} scale {scale.min}..{scale.max}"
            if cond.comment_mentions is not None and cond.comment_mentions not in keywords:
                yield (
                    f"{where}.comment_mentions",
                    f"no keyword list {cond.comment_mentions!r} in hot_alerts.keywords (known: {_known(keywords)})",
                )
            for channel in cond.channel_in or ():
                if channel not in CHANNELS:
                    yield f"{where}.channel_in", f"unknown channel {channel!r} (known: {_known(CHANNELS)})"
    yield from _notify_problems(settings)


def _notify_problems(settings: Settings):
    """Routes of ``boucle notify`` name regions, sites and questions of the registry."""
    known = {"regions": {r.id for r in settings.regions}, "sites": {s.id for s in settings.sites},
             "attributes": set(settings.questions())}
    for r, route in enumerate(settings.notify.routes):
        for field, names in known.items():
            for i, name in enumerate(getattr(route, field)):
                if name not in names:
                    yield f"notify.routes[{r}].{field}[{i}]", f"unknown {field[:-1]} {name!r} (known: {_known(names)})"
