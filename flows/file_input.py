"""A JSONL file as the flow's input, in event-time order: read as it is, or sorted first.

:func:`file_input` reads the file once (:func:`~sources.time_order.check_order`: its events, and
those more than ``windows.allowed_lateness`` behind the latest event before them). A file in time
order within that lateness is read as it is; any other is sorted by ``occurred_at`` into a
temporary copy (an external sort, so a file bigger than memory sorts too; in ``$TMPDIR``, removed
when the run ends), so that no event of a backfill is left out of the windows as late. Which of
the two happened is :attr:`FileInput.order`, one line the run prints and its summary repeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from boucle.sources.file_source import JsonlFileSource
from boucle.sources.time_order import check_order, sort_by_time

__all__ = ["FileInput", "file_input"]


@dataclass(frozen=True)
class FileInput:
    source: JsonlFileSource
    total: int  # non-empty lines: the messages the run will read
    order: str  # one line: read as it is, or sorted (and why)
    sorted: bool

    @property
    def summary(self) -> str:
        """The run summary's word for it."""
        if self.sorted:
            return "sorted by occurred_at (was out of order)"
        return "as it is" + ("" if self.order.startswith("in time order") else " (out of order: --keep-order)")


@contextmanager
def file_input(
    path: Path, lateness: timedelta, *, keep_order: bool = False, sort_dir: Path | None = None
) -> Iterator[FileInput]:
    """The source of ``path`` for the block, sorted by time if it must be (see the module);
    ``keep_order`` reads it in its own order anyway (as a live source would deliver it)."""
    check = check_order(path, int(lateness.total_seconds() * 1000))
    if check.in_order:
        yield FileInput(JsonlFileSource(path), check.events, "in time order: read as it is", sorted=False)
        return
    behind = (f"out of time order ({check.behind:,} of {check.events:,} events more than the allowed lateness,"
              f" {lateness.total_seconds() / 3600:g}h, behind an earlier line)")
    if keep_order:
        yield FileInput(JsonlFileSource(path), check.events, f"{behind}: read as it is (--keep-order), those"
                        " are late", sorted=False)
        return
    copy = sort_by_time(path, sort_dir)
    order = f"{behind}: sorted by occurred_at before the run (--keep-order reads it as it is)"
    try:
        yield FileInput(JsonlFileSource(copy, origin=path, numbered=True), check.events, order, sorted=True)
    finally:
        copy.unlink(missing_ok=True)

