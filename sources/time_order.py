"""A feedback file in event-time order, whatever order it was written in.

The windows count an event only if it is no older than its site's watermark minus the allowed
lateness; a backfill written out of time order (an export concatenated per site, a shuffled
history) would leave most of its events "late", outside the windows. :func:`check_order` reads the
file once (it also counts its events) and says whether any event is more than ``lateness_ms``
behind the latest event before it. If none is, the file is read as it is; otherwise
:func:`sort_by_time` writes a copy sorted by ``occurred_at`` (an external merge sort: runs of at
most ``run_bytes`` sorted in memory and spilled to disk, then merged, so a file bigger than memory
sorts too) which :class:`~sources.file_source.JsonlFileSource` reads with the original path and
line numbers (``origin`` and ``numbered``): dead letters, duplicates and the warehouse's ``origin``
column point at the input file, as for a file read as it is.

Ties keep the file's order (the sort key is ``(occurred_at, line number)``). A line whose time
cannot be read (not JSON, no ``occurred_at``) sorts first; the decoder dead-letters it.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> path = folder / "in.jsonl"
>>> _ = path.write_bytes(b'{"occurred_at": "2026-01-02T00:00:00Z"}\\n\\n{"occurred_at": "2025-01-01T00:00:00Z"}\\n')
>>> check = check_order(path, lateness_ms=3_600_000)
>>> check.events, check.behind, check.in_order
(2, 1, False)
>>> sorted_path = sort_by_time(path, folder, run_bytes=1)
>>> [split_numbered(line) for line in sorted_path.read_bytes().splitlines()]
[(2, b'{"occurred_at": "2025-01-01T00:00:00Z"}'), (0, b'{"occurred_at": "2026-01-02T00:00:00Z"}')]
"""

from __future__ import annotations

import heapq
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

__all__ = ["OrderCheck", "check_order", "event_time_ms", "sort_by_time", "split_numbered"]

_OFFSET_MS = 10**15  # every readable time sorts after 0 (an unreadable one) and stays positive
_RUN_BYTES = 64 << 20
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class OrderCheck:
    """What one pass over a file found: its events and how many were behind the latest before them."""

    events: int  # non-empty lines
    behind: int  # events more than the lateness behind the latest event before them
    lateness_ms: int

    @property
    def in_order(self) -> bool:
        return self.behind == 0


def event_time_ms(line: bytes) -> int | None:
    """``occurred_at`` of a JSON line in epoch milliseconds, or None if it cannot be read.

    >>> event_time_ms(b'{"occurred_at": "1970-01-01T00:00:01.5+00:00"}'), event_time_ms(b"nope")
    (1500, None)
    """
    try:
        text = orjson.loads(line).get("occurred_at")
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MS


def check_order(path: Path, lateness_ms: int) -> OrderCheck:
    """Count the events of ``path`` and those more than ``lateness_ms`` behind the latest before them."""
    events = behind = 0
    latest = None
    with open(path, "rb") as lines:
        for line in lines:
            if not line.strip():
                continue
            events += 1
            ts = event_time_ms(line)
            if ts is None:
                continue
            if latest is None or ts > latest:
                latest = ts
            elif ts < latest - lateness_ms:
                behind += 1
    return OrderCheck(events, behind, lateness_ms)


def split_numbered(line: bytes) -> tuple[int, bytes]:
    """``(original line number, original line)`` of a line of a sorted copy."""
    prefix, _, value = line.rstrip(b"\r\n").partition(b"\t")
    return int(prefix.rsplit(b" ", 1)[1]), value


def _keyed(number: int, line: bytes) -> bytes:
    # Fixed-width keys: byte order is (time, line number) order, so runs merge as plain bytes.
    ts = event_time_ms(line)
    return b"%020d %012d\t%s\n" % (0 if ts is None else ts + _OFFSET_MS, number, line.rstrip(b"\r\n"))


def sort_by_time(path: Path, folder: Path | str | None = None, *, run_bytes: int = _RUN_BYTES) -> Path:
    """A copy of ``path`` sorted by ``(occurred_at, line number)``, in ``folder`` (see the module).

    Each line of the copy is ``<key> <line number>\\t<original line>``; empty lines are left out.
    Runs of at most ``run_bytes`` are sorted in memory; more than one run are merged from disk.
    """
    folder = Path(folder or tempfile.gettempdir())
    runs: list[Path] = []
    run: list[bytes] = []
    size = 0
    with open(path, "rb") as lines:
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            keyed = _keyed(number, line)
            run.append(keyed)
            size += len(keyed)
            if size >= run_bytes:
                runs.append(_spill(run, folder))
                run, size = [], 0
    if run or not runs:
        runs.append(_spill(run, folder))
    if len(runs) == 1:
        return runs[0]
    merged = _new_file(folder)
    try:
        with ExitStack() as stack, open(merged, "wb") as out:
            out.writelines(heapq.merge(*(stack.enter_context(open(r, "rb")) for r in runs)))
    finally:
        for r in runs:
            r.unlink()
    return merged


def _new_file(folder: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="boucle-sort-", suffix=".jsonl", dir=folder)
    os.close(fd)
    return Path(name)


def _spill(run: list[bytes], folder: Path) -> Path:
    run.sort()
    path = _new_file(folder)
    with open(path, "wb") as out:
        out.writelines(run)
    return path
