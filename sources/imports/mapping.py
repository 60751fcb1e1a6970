"""The mapping file of a survey export (TOML): which column is which field or question, and how to read it.

A mapping says, for one export layout, where every field of the feedback contract comes from
(a column, or a constant ``value``; ``map`` translates values), how times are written and in which
zone, which codes mean "not rated", and each question's scale over time. Shipped layouts
(``qualtrics``, ``generic``) are found by name; any other is a path.

>>> mapping = mapping_from_dict({
...     "fields": {"event_id": {"hash": True}, "occurred_at": {"column": "date"}, "site_id": {"column": "site"}},
...     "questions": [{"column": "overall", "name": "csat", "kind": "score", "not_rated": [0, "N/A"],
...                    "scales": [{"min": 1, "max": 10}, {"valid_from": "2026-03-01", "min": 1, "max": 5}]}]})
>>> q = mapping.questions[0]
>>> q.not_rated, [s.valid_from for s in q.scales]
(['0', 'n/a'], [None, datetime.date(2026, 3, 1)])
>>> mapping_from_dict({"fields": {"event_id": {"column": "id", "value": "x"}, "occurred_at": {"column": "date"},
...     "site_id": {"value": "s1"}}, "questions": [{"column": "q", "name": "nps", "kind": "score"}]})
Traceback (most recent call last):
...
boucle.sources.imports.mapping.MappingError: <dict>: fields.event_id: give either column or value, not both
"""

from __future__ import annotations

import sys
from datetime import date, datetime, time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ConsentField", "Defaults", "Fields", "IdField", "Layout", "Mapping", "MappingError", "Question", "Scale",
    "SHIPPED_LAYOUTS", "TimeField", "ValueField", "load_mapping", "mapping_from_dict", "shipped_layout",
]

#: The shipped mappings and their example exports live here (package data).
LAYOUTS_DIR = Path(str(resources.files("boucle.sources.imports").joinpath("layouts")))
SHIPPED_LAYOUTS = ("generic", "qualtrics")
#: The time-zone value that reads the zone from the column's Qualtrics ImportId header cell.
FROM_HEADER = "header"


class MappingError(Exception):
    """A mapping problem, with where it is (file and key path) and why."""


def _codes(values: Any) -> Any:
    """"Not rated" codes as stripped, case-folded text: ``0``, ``"0"`` and ``" N/A"`` as they compare."""
    if isinstance(values, list):
        return [str(v).strip().casefold() for v in values]
    return values


def _zone(name: str | None) -> str | None:
    if name is None or name == FROM_HEADER:
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Paris')") from None
    return name


Codes = Annotated[list[str], BeforeValidator(_codes)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Layout(_Strict):
    """How the file is laid out. ``header_rows``: rows before the data (the first names the columns);
    ``import_id_row``: a header row of Qualtrics ImportId JSON cells (they may name a column's time zone)."""

    format: Literal["auto", "csv", "parquet"] = "auto"
    header_rows: int = Field(1, ge=1, le=20)
    import_id_row: int | None = Field(None, ge=2, le=20)
    delimiter: str = Field(",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"  # eats the byte-order mark spreadsheet tools write

    @model_validator(mode="after")
    def _within_headers(self) -> "Layout":
        if self.import_id_row is not None and self.import_id_row > self.header_rows:
            raise ValueError(f"import_id_row {self.import_id_row} is not one of the {self.header_rows} header rows")
        return self


class ValueField(_Strict):
    """Where a field's value comes from: a ``column`` or a constant ``value``; ``map`` translates values."""

    column: str | None = None
    value: str | None = None
    map: dict[str, str] = {}

    @model_validator(mode="after")
    def _one_source(self) -> "ValueField":
        if self.column is not None and self.value is not None:
            raise ValueError("give either column or value, not both")
        if self.column is None and self.value is None and not self._may_be_empty():
            raise ValueError("give a column or a value")
        return self

    def _may_be_empty(self) -> bool:
        return False


class IdField(ValueField):
    """``event_id``: a column (with an optional ``prefix``), or ``hash = true``: a stable id from the row's
    cells (those of ``hash_columns``, default every column), so a re-import gives the same ids."""

    hash: bool = False
    hash_columns: list[str] = []
    prefix: str = ""

    def _may_be_empty(self) -> bool:
        return self.hash

    @model_validator(mode="after")
    def _hash_or_column(self) -> "IdField":
        if self.hash and (self.column is not None or self.value is not None):
            raise ValueError("give either hash = true or a column, not both")
        if self.value is not None:
            raise ValueError("an event id cannot be a constant: give a column or hash = true")
        return self


class TimeField(ValueField):
    """``occurred_at``: ``formats`` (strptime, tried in order; default ISO 8601, then ``%Y-%m-%d``);
    ``timezone``: the zone of a time written without offset (``"header"``: the one its Qualtrics
    ImportId cell names), else the site's zone from the registry, else ``defaults.timezone``;
    ``date_only_time``: the local time given to a date without time of day (noon: the local day and
    the UTC day agree for every zone within 11 hours of UTC)."""

    formats: list[str] = []
    timezone: str | None = None
    date_only_time: time = time(12, 0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        return _zone(name)


class ConsentField(ValueField):
    """``consent_contact``: the cell values meaning yes and no (compared case-folded); an empty cell
    leaves consent unsaid; any other value is a dead letter."""

    true: Codes = ["1", "true", "yes", "y", "oui", "ja", "si", "sí"]
    false: Codes = ["0", "false", "no", "n", "non", "nein", "2"]


class Fields(_Strict):
    event_id: IdField
    occurred_at: TimeField
    site_id: ValueField
    channel: ValueField | None = None
    journey_stage: ValueField | None = None
    comment: ValueField | None = None
    language: ValueField | None = None
    customer_id: ValueField | None = None
    customer_email: ValueField | None = None
    customer_phone: ValueField | None = None
    consent_contact: ConsentField | None = None


class Scale(_Strict):
    """A question's scale from ``valid_from`` (a date, local to the response; the first may leave it out:
    since always) on, and how its values map to the catalogue's scale: a ``values`` table (old value →
    catalogue value), else a linear rescale of ``min..max`` onto the catalogue's (rounded half up)."""

    valid_from: date | None = None
    min: int
    max: int
    values: dict[str, int] = {}

    @field_validator("valid_from", mode="before")
    @classmethod
    def _a_date(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            raise ValueError("valid_from is a date (YYYY-MM-DD), local to the response")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Scale":
        if not self.min < self.max:
            raise ValueError(f"need min < max, got {self.min}..{self.max}")
        return self


class Question(_Strict):
    """A column holding the ratings of one question of the catalogue (``kind``: score or attribute)."""

    column: str
    name: str
    kind: Literal["score", "attribute"]
    not_rated: Codes = []
    scales: list[Scale] = []

    @field_validator("scales")
    @classmethod
    def _periods(cls, scales: list[Scale]) -> list[Scale]:
        for i, scale in enumerate(scales):
            if scale.valid_from is None and i:
                raise ValueError(f"scales[{i}]: only the first scale may leave valid_from out")
            if i and scales[i - 1].valid_from is not None and scale.valid_from <= scales[i - 1].valid_from:
                raise ValueError(f"scales[{i}]: valid_from must follow the previous one's")
        return scales


class Defaults(_Strict):
    """What applies when a row or the registry says nothing: the zone of times without offset,
    "not rated" codes of every question (an empty cell is always unanswered), language, channel."""

    timezone: str = "UTC"
    not_rated: Codes = []
    language: str = ""
    channel: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        return _zone(name)


class Mapping(_Strict):
    name: str = ""
    description: str = ""
    layout: Layout = Layout()
    defaults: Defaults = Defaults()
    fields: Fields
    questions: list[Question] = Field(min_length=1)

    @field_validator("questions")
    @classmethod
    def _distinct(cls, questions: list[Question]) -> list[Question]:
        seen: dict[str, int] = {}
        for i, q in enumerate(questions):
            if q.name in seen:
                raise ValueError(f"[{i}]: question {q.name!r} is already mapped by questions[{seen[q.name]}]")
            seen[q.name] = i
        return questions

    def columns(self) -> list[str]:
        """Every column the mapping reads, in the order it names them."""
        named = [getattr(self.fields, f) for f in Fields.model_fields]
        out = [f.column for f in named if f is not None and f.column is not None]
        out += self.fields.event_id.hash_columns
        out += [q.column for q in self.questions]
        return list(dict.fromkeys(out))


def shipped_layout(name: str) -> Path:
    """The shipped mapping file ``name`` (``qualtrics``, ``generic``)."""
    return LAYOUTS_DIR / f"{name}.toml"


def load_mapping(where: str | Path) -> Mapping:
    """The mapping of a shipped layout's name or of a TOML file; :class:`MappingError` names the key."""
    path = shipped_layout(str(where)) if str(where) in SHIPPED_LAYOUTS else Path(where)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(SHIPPED_LAYOUTS)
        raise MappingError(f"{path}: no such mapping file (or a shipped layout: {known})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: not valid TOML: {exc}") from None
    return mapping_from_dict(data, str(path))


def mapping_from_dict(data: dict[str, Any], source: str = "<dict>") -> Mapping:
    try:
        return Mapping(**data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
            lines.append(f"{source}: {where or '(top level)'}: {error['msg'].removeprefix('Value error, ')}")
        raise MappingError("\n".join(lines)) from None
