"""Turn the rows of a survey export into feedback events (the v1 contract), or say why a row cannot be one.

A "not rated" code or an empty cell drops that answer only; a value on a past scale is mapped to
the catalogue's (a value table, else a linear rescale); a row that cannot be read, has no usable
time or no rating at all is a :class:`RowError` with a reason code and a sentence naming the
column. What the registry decides (known site, channel) is the decoder's to check afterwards.

>>> from boucle.sources.imports.mapping import mapping_from_dict
>>> mapping = mapping_from_dict({
...     "defaults": {"timezone": "Europe/Paris", "not_rated": ["N/A"]},
...     "fields": {"event_id": {"hash": True}, "occurred_at": {"column": "date"}, "site_id": {"column": "site"}},
...     "questions": [{"column": "overall", "name": "csat", "kind": "score", "not_rated": [99],
...                    "scales": [{"min": 1, "max": 10}, {"valid_from": "2026-03-01", "min": 1, "max": 5}]},
...                   {"column": "wait", "name": "waiting_time", "kind": "attribute"}]})
>>> convert = RowConverter(mapping, ["date", "site", "overall", "wait"], {}, {"csat": ("score", 1, 5),
...     "waiting_time": ("attribute", 1, 5)}, {})
>>> event = convert(Row(2, ["2026-02-10", "s1", "10", "N/A"]))
>>> event["occurred_at"], event["scores"], event.get("attributes")
('2026-02-10T11:00:00.000Z', {'csat': 5}, None)
>>> convert(Row(3, ["2026-03-10", "s1", "99", "4"]))["attributes"], convert.stats.not_rated
({'waiting_time': 4}, Counter({'waiting_time': 1, 'csat': 1}))
>>> convert(Row(4, ["2026-03-10", "s1", "7", ""]))
RowError(code='out_of_scale', reason='overall (csat): 7 is outside the scale 1..5 valid from 2026-03-01')
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from boucle.config.times import iso_ms
from boucle.sources.imports.mapping import FROM_HEADER, Fields, Mapping, MappingError, Question, Scale, ValueField
from boucle.sources.imports.reader import Row

__all__ = ["IMPORT_REASON_CODES", "ImportStats", "RowConverter", "RowError", "SiteInfo"]

#: Reason codes of a row the converter refuses (the decoder's own codes follow for what it refuses).
IMPORT_REASON_CODES = ("bad_row", "bad_type", "bad_timestamp", "out_of_scale", "missing_field")

#: Row hashes are UUIDs in this namespace: the same cells give the same id on every re-import.
ID_NAMESPACE = uuid.UUID("6f1e1d6c-3b0a-5c2e-9a63-2f4e8c1b7d10")

_TIME_DIRECTIVES = re.compile(r"%[HIMSXcTRpfz]")
_INTEGRAL = re.compile(r"^[+-]?\d+(?:[.,]0*)?$")


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What the registry says of a site that reading an export needs (empty: not said)."""

    zone: str = ""
    language: str = ""


@dataclass(frozen=True, slots=True)
class RowError:
    code: str
    reason: str


@dataclass
class ImportStats:
    """Per question: answers dropped as "not rated", left blank, and mapped from a past scale."""

    not_rated: Counter = field(default_factory=Counter)
    blank: Counter = field(default_factory=Counter)
    rescaled: Counter = field(default_factory=Counter)


class _Fail(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.error = RowError(code, reason)


class RowConverter:
    """``convert(row)``: the contract event (a dict) of one row, or a :class:`RowError`.

    ``catalogue``: question name -> (kind, min, max); ``sites``: site id -> :class:`SiteInfo`;
    ``zones``: column -> time zone named by the file's header (Qualtrics ImportId). A column the
    mapping names but the file lacks, or a question the catalogue lacks, is a :class:`MappingError`.
    """

    def __init__(self, mapping: Mapping, columns: list[str], zones: dict[str, str],
                 catalogue: dict[str, tuple[str, int, int]], sites: dict[str, SiteInfo]) -> None:
        self._mapping, self._fields, self._zones, self._sites = mapping, mapping.fields, zones, sites
        self._width = len(columns)
        index = {name: i for i, name in enumerate(columns)}
        missing = [c for c in mapping.columns() if c not in index]
        if missing:
            raise MappingError(f"columns {', '.join(map(repr, missing))} of the mapping are not in the file"
                               f" (its columns: {', '.join(columns[:30])}{' ...' if len(columns) > 30 else ''})")
        self._index = index
        self._questions = [(q, index[q.column], catalogue_scale(q, i, catalogue)) for i, q in enumerate(mapping.questions)]
        self._codes = set(mapping.defaults.not_rated)
        hash_columns = self._fields.event_id.hash_columns
        self._hash_cells = [index[c] for c in hash_columns] if hash_columns else None
        self.stats = ImportStats()

    def __call__(self, row: Row) -> dict[str, Any] | RowError:
        if row.problem:
            return RowError("bad_row", row.problem)
        cells = row.cells
        if len(cells) < self._width or any(c.strip() for c in cells[self._width:]):
            return RowError("bad_row", f"row has {len(cells)} cells, the header {self._width}")
        try:
            return self._event(cells)
        except _Fail as fail:
            return fail.error

    def _event(self, cells: list[str]) -> dict[str, Any]:
        f = self._fields
        site_id = self._text(f.site_id, cells)
        if not site_id:
            raise _Fail("missing_field", f"{f.site_id.column or 'site_id'}: no site id")
        site = self._sites.get(site_id, SiteInfo())
        moment = self._time(cells, site)
        ratings: dict[str, dict[str, int]] = {"score": {}, "attribute": {}}
        not_rated, blank, rescaled = [], [], []
        for question, i, scale in self._questions:
            cell = cells[i].strip()
            if not cell:
                blank.append(question.name)
                continue
            if cell.casefold() in self._codes or cell.casefold() in question.not_rated:
                not_rated.append(question.name)
                continue
            value, mapped = self._rating(question, cell, moment.date(), scale)
            ratings[question.kind][question.name] = value
            if mapped:
                rescaled.append(question.name)
        if not ratings["score"] and not ratings["attribute"]:
            raise _Fail("missing_field", "no rating: every question is blank or not rated")
        event: dict[str, Any] = {
            "event_id": self._event_id(cells),
            "occurred_at": iso_ms(round(moment.timestamp() * 1000)),
            "site_id": site_id,
        }
        channel = self._text(f.channel, cells) or self._mapping.defaults.channel
        for name, value in (("channel", channel.lower()), ("journey_stage", self._text(f.journey_stage, cells))):
            if value:
                event[name] = value
        event["scores"] = ratings["score"]
        if ratings["attribute"]:
            event["attributes"] = ratings["attribute"]
        comment = self._text(f.comment, cells)
        if comment:
            event["comment"] = comment
        language = _language(self._text(f.language, cells)) or site.language or self._mapping.defaults.language
        if language:
            event["language"] = language
        customer = self._customer(cells)
        if customer:
            event["customer"] = customer
        self.stats.not_rated.update(not_rated)
        self.stats.blank.update(blank)
        self.stats.rescaled.update(rescaled)
        return event

    def _text(self, source: ValueField | None, cells: list[str]) -> str:
        if source is None:
            return ""
        text = source.value if source.value is not None else cells[self._index[source.column]].strip()
        return source.map.get(text, text)

    def _event_id(self, cells: list[str]) -> str:
        f = self._fields.event_id
        if not f.hash:
            given = self._text(f, cells)
            if not given:
                raise _Fail("missing_field", f"{f.column}: no event id")
            return f.prefix + given
        chosen = cells if self._hash_cells is None else [cells[i] for i in self._hash_cells]
        return f.prefix + str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(c.strip() for c in chosen)))

    def _time(self, cells: list[str], site: SiteInfo) -> datetime:
        f = self._fields.occurred_at
        text = self._text(f, cells)
        where = f.column or "occurred_at"
        if not text:
            raise _Fail("bad_timestamp", f"{where}: no time")
        moment, date_only = _parse_time(text, f.formats)
        if moment is None:
            formats = ", ".join(f.formats) if f.formats else "ISO 8601 or YYYY-MM-DD"
            raise _Fail("bad_timestamp", f"{where}: {text!r} is not a time ({formats})")
        if date_only:
            moment = datetime.combine(moment.date(), f.date_only_time)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self._zone(f, site)))
        return moment

    def _zone(self, f, site: SiteInfo) -> str:
        if f.timezone == FROM_HEADER and f.column in self._zones:
            return self._zones[f.column]
        if f.timezone and f.timezone != FROM_HEADER:
            return f.timezone
        return site.zone or self._mapping.defaults.timezone

    def _rating(self, question: Question, cell: str, day: date, catalogue: tuple[int, int]) -> tuple[int, bool]:
        where = f"{question.column} ({question.name})"
        if not _INTEGRAL.match(cell):
            codes = sorted(self._codes | set(question.not_rated))
            raise _Fail("bad_type", f"{where}: {cell!r} is not a whole number"
                                    f" (not-rated codes: {', '.join(codes) if codes else 'none'})")
        value = int(cell.replace(",", ".").split(".")[0])
        scale = _period(question.scales, day)
        low, high = catalogue
        if scale is None:
            if question.scales:
                raise _Fail("out_of_scale", f"{where}: answered on {day}, before its first scale"
                                            f" (valid from {question.scales[0].valid_from})")
            if not low <= value <= high:
                raise _Fail("out_of_scale", f"{where}: {value} is outside the scale {low}..{high}")
            return value, False
        since = f" valid from {scale.valid_from}" if scale.valid_from else ""
        if scale.values:
            if str(value) not in scale.values:
                raise _Fail("out_of_scale", f"{where}: {value} has no entry in the value table of the scale{since}")
            mapped = scale.values[str(value)]
            return mapped, mapped != value
        if not scale.min <= value <= scale.max:
            raise _Fail("out_of_scale", f"{where}: {value} is outside the scale {scale.min}..{scale.max}{since}")
        if (scale.min, scale.max) == (low, high):
            return value, False
        # Linear rescale, rounded half up (int(x + 0.5): the values are positive offsets).
        return low + int((value - scale.min) * (high - low) / (scale.max - scale.min) + 0.5), True

    def _customer(self, cells: list[str]) -> dict[str, Any]:
        f: Fields = self._fields
        customer: dict[str, Any] = {}
        for key, source in (("id", f.customer_id), ("email", f.customer_email), ("phone", f.customer_phone)):
            text = self._text(source, cells)
            if text:
                customer[key] = text
        consent = f.consent_contact
        text = self._text(consent, cells).casefold()
        if text:
            if text in consent.true:
                customer["consent_contact"] = True
            elif text in consent.false:
                customer["consent_contact"] = False
            else:
                raise _Fail("bad_type", f"{consent.column or 'consent_contact'}: {text!r} is neither yes"
                                        f" ({', '.join(consent.true)}) nor no ({', '.join(consent.false)})")
        return customer


def catalogue_scale(question: Question, i: int, catalogue: dict[str, tuple[str, int, int]]) -> tuple[int, int]:
    """The catalogue's scale of ``question`` (questions[i]); a :class:`MappingError` when the catalogue
    lacks it, has it under the other kind, or a value table maps outside it."""
    known = catalogue.get(question.name)
    if known is None or known[0] != question.kind:
        same = sorted(n for n, (kind, _, _) in catalogue.items() if kind == question.kind)
        raise MappingError(f"questions[{i}]: {question.kind} {question.name!r} is not in the catalogue"
                           f" (its {question.kind}s: {', '.join(same) or 'none'})")
    low, high = known[1], known[2]
    for j, scale in enumerate(question.scales):
        for old, new in scale.values.items():
            if not low <= new <= high:
                raise MappingError(f"questions[{i}].scales[{j}].values: {old!r} = {new} is outside the"
                                   f" catalogue's scale of {question.name}, {low}..{high}")
    return low, high


def _period(scales: list[Scale], day: date) -> Scale | None:
    chosen = None
    for scale in scales:
        if scale.valid_from is None or scale.valid_from <= day:
            chosen = scale
    return chosen


def _parse_time(text: str, formats: list[str]) -> tuple[datetime | None, bool]:
    """The time in ``text`` (naive when it has no offset) and whether it was a date only."""
    if formats:
        for fmt in formats:
            try:
                return datetime.strptime(text, fmt), not _TIME_DIRECTIVES.search(fmt)
            except ValueError:
                continue
        return None, False
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time()), True
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return None, False
    return moment, False


def _language(text: str) -> str:
    """A language code as sites speak it: ``"EN-GB"`` and ``"en_GB"`` are ``"en"``."""
    return re.split(r"[-_]", text.strip(), maxsplit=1)[0].lower() if text.strip() else ""
