"""The entity registry from data: sites and regions read from CSV files named in ``[registry]``.

A network of thousands of sites is a table the organisation already has, not hand-written TOML.
``[registry] sites_csv`` / ``regions_csv`` name CSV files (relative to the config file); their rows
join the ``[[sites]]`` / ``[[regions]]`` of the TOML, which stays for small networks. A column
named differently from the field is mapped in ``[registry.site_columns]`` (field = "CSV header").
An empty cell takes the field's default. A bad row is reported with its file, row (as a
spreadsheet numbers it: the header is row 1) and column.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "sites.csv").write_text("Store,Area,Lang\\ns1,north,en\\ns2,north,English\\n")
>>> read_rows(folder / "sites.csv", Site, {"id": "Store", "region": "Area", "language": "Lang"})
Traceback (most recent call last):
...
boucle.config.registry.RegistryError: sites.csv: row 3, column 'Lang': 'English' is not a language code (a tag such as 'de', 'de-CH' or 'sv')
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from boucle.config.settings import Region, Registry, Site

__all__ = ["CsvOrigin", "RegistryError", "read_registry", "read_rows"]

M = TypeVar("M", bound=BaseModel)


class RegistryError(ValueError):
    """A registry file that cannot be read: its problems, one line each (file, row, column)."""


@dataclass(frozen=True)
class CsvOrigin:
    """Where an entry of the registry came from, so a later check can name the file's row."""

    file: str
    row: int
    columns: dict[str, str]  # field -> CSV header

    def where(self, field: str) -> str:
        return f"{self.file}: row {self.row}, column {self.columns.get(field, field)!r}"


def _columns(model: type[BaseModel], mapping: dict[str, str], header: list[str], name: str) -> dict[str, str]:
    """field -> header for every field the file has; a mapped or required column missing is an error."""
    fields = model.model_fields
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise RegistryError(f"{name}: column mapping names no field: {', '.join(unknown)} (fields: {', '.join(fields)})")
    out = {}
    for field, info in fields.items():
        column = mapping.get(field, field)
        if column in header:
            out[field] = column
        elif field in mapping or info.is_required():
            raise RegistryError(
                f"{name}: no column {column!r} for the {field} field (columns: {', '.join(header) or 'none'})"
            )
    return out


def read_rows(
    path: Path, model: type[M], mapping: dict[str, str], name: str | None = None, delimiter: str = ",",
    max_errors: int = 20,
) -> list[tuple[M, CsvOrigin]]:
    """Every row of the CSV at ``path`` as a ``model``, with where it came from (``name``: the
    file as errors call it, by default its name). All the bad rows are reported at once (up to
    ``max_errors`` lines), not only the first.
    """
    name = name or path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = [h.strip() for h in next(reader, [])]
            columns = _columns(model, mapping, header, name)
            index = {field: header.index(column) for field, column in columns.items()}
            out, problems = [], []
            for row_number, row in enumerate(reader, start=2):
                if not any(cell.strip() for cell in row):
                    continue  # blank lines at the end of an export
                values = {f: row[i].strip() for f, i in index.items() if i < len(row) and row[i].strip()}
                origin = CsvOrigin(name, row_number, columns)
                try:
                    out.append((model.model_validate(values), origin))
                except ValidationError as exc:
                    for e in exc.errors():
                        field = str(e["loc"][0]) if e["loc"] else ""
                        problems.append(f"{origin.where(field)}: {e['msg'].removeprefix('Value error, ')}")
    except FileNotFoundError:
        raise RegistryError(f"{name}: no such registry file ({path})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RegistryError(f"{name}: not a readable UTF-8 CSV file: {exc}") from None
    if problems:
        more = len(problems) - max_errors
        raise RegistryError("\n".join(problems[:max_errors] + ([f"{name}: ... and {more} more"] if more > 0 else [])))
    return out


def read_registry(registry: Registry, base: Path) -> tuple[list[tuple[Region, CsvOrigin]], list[tuple[Site, CsvOrigin]]]:
    """The regions and sites of the CSV files ``registry`` names, relative to ``base``."""
    regions = sites = []
    if registry.regions_csv:
        regions = read_rows(base / registry.regions_csv, Region, registry.region_columns, registry.regions_csv,
                            registry.delimiter)
    if registry.sites_csv:
        sites = read_rows(base / registry.sites_csv, Site, registry.site_columns, registry.sites_csv,
                          registry.delimiter)
    return regions, sites
