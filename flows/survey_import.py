"""A survey export through its mapping and the flow's decoder: the events to write, the rows refused.

Every event :func:`import_export` yields has passed the same :class:`~operators.decode.Decoder` as
the flow (registry, catalogue, scales, channel), so whatever it writes the flow accepts. A row
refused by the mapping (:mod:`sources.imports.convert`) or by the decoder becomes a dead letter of
the flow's shape (:class:`~flows.feedback_flow.DeadLetterRecord`): ``origin`` the file, ``offset``
the row number, ``raw`` the row's cells as a JSON object.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import orjson

from boucle.config.settings import Settings
from boucle.flows.feedback_flow import DeadLetterRecord, dead_letter_records
from boucle.operators.decode import DeadLetter, DecodedBatch, Decoder
from boucle.sources.imports import ImportStats, Mapping, Row, RowConverter, RowError, SiteInfo, open_table
from boucle.sources.message import RawMessage

__all__ = ["ImportResult", "catalogue_of", "import_export", "sites_of"]

_BATCH = 2_000


@dataclass
class ImportResult:
    """What an import did: rows read, events accepted, dead letters by reason, answers dropped or mapped."""

    rows: int = 0
    events: int = 0
    dead: Counter = field(default_factory=Counter)
    answers: ImportStats = field(default_factory=ImportStats)
    total: int | None = None  # rows the file was expected to hold (progress)


def catalogue_of(settings: Settings) -> dict[str, tuple[str, int, int]]:
    """Question name -> (kind, min, max) from the catalogue."""
    catalogue = {name: ("score", m.min, m.max) for name, m in settings.scores.items()}
    catalogue.update({a.name: ("attribute", a.min, a.max) for a in settings.attributes})
    return catalogue


def sites_of(settings: Settings) -> dict[str, SiteInfo]:
    """What each site of the registry tells an import: its time zone (its own, its region's or its
    country's, as for its local days) and language."""
    zones = settings.site_zones()
    return {s.id: SiteInfo(zone=zones[s.id], language=s.language) for s in settings.sites}


def import_export(
    settings: Settings,
    path: Path,
    mapping: Mapping,
    result: ImportResult,
    on_dead: Callable[[list[DeadLetterRecord]], None],
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[RawMessage]:
    """The accepted events of ``path`` as messages (value: the contract JSON, key: the site id),
    in file order; the refused rows go to ``on_dead``; ``result`` counts as it goes.
    A :class:`~sources.imports.MappingError` or :class:`~sources.imports.TableError` stops it before
    the first row."""
    decoder = Decoder(settings)
    keep_raw = settings.privacy.keep_raw
    origin = str(path)
    with open_table(path, mapping.layout) as table:
        result.total = table.total
        convert = RowConverter(mapping, table.columns, table.zones, catalogue_of(settings), sites_of(settings))
        result.answers = convert.stats
        columns = table.columns
        batch: list[Row] = []
        for row in table.rows:
            batch.append(row)
            if len(batch) >= _BATCH:
                yield from _batch(batch, columns, convert, decoder, origin, keep_raw, result, on_dead)
                if on_rows is not None:
                    on_rows(len(batch))
                batch = []
        if batch:
            yield from _batch(batch, columns, convert, decoder, origin, keep_raw, result, on_dead)
            if on_rows is not None:
                on_rows(len(batch))


def _batch(rows: list[Row], columns: list[str], convert: RowConverter, decoder: Decoder, origin: str,
           keep_raw: bool, result: ImportResult, on_dead) -> list[RawMessage]:
    messages, refused, cells_of = [], [], {}
    for row in rows:
        event = convert(row)
        if isinstance(event, RowError):
            refused.append(DeadLetter(_row_message(row, columns, origin), event.code, event.reason))
            continue
        cells_of[row.number] = row
        messages.append(RawMessage(orjson.dumps(event), origin, 0, row.number, event["site_id"].encode("utf-8")))
    decoded = decoder.decode_many(messages)
    for d in decoded.rejected:  # the dead letter shows the row, as for the mapping's refusals
        refused.append(DeadLetter(_row_message(cells_of[d.message.offset], columns, origin), d.reason_code, d.reason))
    refused.sort(key=lambda d: d.message.offset)
    result.rows += len(rows)
    result.events += len(decoded.accepted)
    result.dead.update(d.reason_code for d in refused)
    if refused:
        on_dead(dead_letter_records(DecodedBatch([], refused, 0), keep_raw))
    return [f.message for f in decoded.accepted]


def _row_message(row: Row, columns: list[str], origin: str) -> RawMessage:
    cells = dict(zip(columns, row.cells)) if row.cells else {}
    if len(row.cells) > len(columns):
        cells["(extra cells)"] = row.cells[len(columns):]
    return RawMessage(orjson.dumps(cells), origin, 0, row.number)
