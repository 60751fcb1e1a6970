"""Tumbling windows on event time per site: count, mean, bottom and top box of every question.

Each site keeps a watermark, the latest ``occurred_at`` it has seen (and, for live sources, the
wall clock). An event older than ``watermark - allowed_lateness`` is *late*: it is flagged, kept in
the raw feedback, and left out of the windows. A window closes, and its rows are emitted, once
the watermark passes ``window end + allowed_lateness``; at the end of the input every open window
is emitted too but kept, so that a resumed run completes it and re-emits it under the same key
(the table keeps the row with the largest ``n``).

Windows are aligned to UTC (epoch multiples of their length).

>>> spec = WindowSpec([3_600_000], lateness_ms=0, thresholds={"nps": (6, 9)}, region_of={"s1": "north"})
>>> state = SiteWindows(spec)
>>> e = lambda ts, nps: Feedback("e", ts, "s1", "", "", {"nps": nps}, {}, "", "", {}, 0, "")
>>> state.add([e(1_000, 10), e(2_000, 3)])
[]
>>> [row[:4] + row[6:] for row in state.add([e(3_600_000, 8)])]
[('s1', 'north', 'nps', 3600, 2, 13, 6.5, 1, 0.5, 1, 0.5)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable

import bytewax.operators as op
from bytewax.dataflow import operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from operators.decode import Feedback

__all__ = ["ScoreRow", "SiteWindows", "WindowSpec", "WindowedBatch", "event_time_windows"]

# (site_id, region, attribute, window_length_s, window_start_ms, window_end_ms,
#  n, sum, mean, bottom_n, bottom_share, top_n, top_share) — the attribute_scores columns.
ScoreRow = tuple
SCORE_COLUMNS = (
    "site_id", "region", "attribute", "window_length", "window_start", "window_end",
    "n", "sum", "mean", "bottom_n", "bottom_share", "top_n", "top_share",
)  # fmt: skip


@dataclass(frozen=True)
class WindowSpec:
    lengths_ms: list[int]
    lateness_ms: int
    thresholds: dict[str, tuple[int, int]]  # question -> (bottom_max, top_min)
    region_of: dict[str, str] = field(default_factory=dict)
    wall_clock: bool = False


@dataclass(slots=True)
class WindowedBatch:
    """What one site's batch produced: its events (late ones flagged) and the rows of closed windows."""

    events: list[Feedback]
    rows: list[ScoreRow] = field(default_factory=list)


class SiteWindows:
    """The open windows of one site; plain data so that snapshots are cheap to copy."""

    __slots__ = ("site_id", "spec", "watermark", "open")

    def __init__(self, spec: WindowSpec, snapshot: tuple | None = None):
        self.spec = spec
        self.site_id = ""  # learnt from the first event: bytewax builders are not told the key
        self.watermark: int = -(2**62)
        # (length_ms, start_ms) -> question -> [n, sum, bottom_n, top_n]
        self.open: dict[tuple[int, int], dict[str, list[int]]] = {}
        if snapshot is not None:
            self.site_id, self.watermark, open_windows = snapshot
            self.open = {k: {q: list(a) for q, a in v.items()} for k, v in open_windows.items()}

    def snapshot(self) -> tuple:
        windows = {k: {q: tuple(a) for q, a in v.items()} for k, v in self.open.items()}
        return self.site_id, self.watermark, windows

    def add(self, events: Iterable[Feedback], now_ms: int | None = None) -> list[ScoreRow]:
        """Aggregate on-time events, flag late ones, and return the rows of windows that closed."""
        lengths = self.spec.lengths_ms
        lateness = self.spec.lateness_ms
        thresholds = self.spec.thresholds
        open_windows = self.open
        watermark = self.watermark if now_ms is None else max(self.watermark, now_ms)
        for event in events:
            self.site_id = event.site_id
            ts = event.ts_ms
            if ts < watermark - lateness:
                event.late = True
                continue
            if ts > watermark:
                watermark = ts
            for length in lengths:
                key = (length, ts - ts % length)
                window = open_windows.get(key)
                if window is None:
                    window = open_windows[key] = {}
                for ratings in (event.scores, event.attributes):
                    for question, value in ratings.items():
                        agg = window.get(question)
                        if agg is None:
                            agg = window[question] = [0, 0, 0, 0]
                        agg[0] += 1
                        agg[1] += value
                        bottom_max, top_min = thresholds[question]
                        if value <= bottom_max:
                            agg[2] += 1
                        elif value >= top_min:
                            agg[3] += 1
        self.watermark = watermark
        return self.close(watermark - lateness)

    def close(self, horizon_ms: int, keep: bool = False) -> list[ScoreRow]:
        """Rows of the windows ending at or before ``horizon_ms``; forgotten unless ``keep``."""
        done = [key for key in self.open if key[0] + key[1] <= horizon_ms]
        rows: list[ScoreRow] = []
        for key in done:
            window = self.open[key] if keep else self.open.pop(key)
            rows.extend(self._rows(key, window))
        return rows

    def next_close_ms(self) -> int | None:
        ends = [length + start for length, start in self.open]
        return min(ends) + self.spec.lateness_ms if ends else None

    def _rows(self, key: tuple[int, int], window: dict[str, list[int]]) -> Iterable[ScoreRow]:
        length, start = key
        for question, (n, total, bottom, top) in window.items():
            yield (
                self.site_id, self.spec.region_of.get(self.site_id, ""), question, length // 1000, start, start + length,
                n, total, total / n, bottom, bottom / n, top, top / n,
            )  # fmt: skip


def _now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


class _WindowLogic(StatefulBatchLogic):
    def __init__(self, windows: SiteWindows, now: Callable[[], int]) -> None:
        self.windows = windows
        self.now = now

    def _now(self) -> int | None:
        return self.now() if self.windows.spec.wall_clock else None

    def on_batch(self, values: list[list[Feedback]]):
        out = []
        for events in values:
            rows = self.windows.add(events, self._now())
            out.append(WindowedBatch(events, rows))
        return out, StatefulBatchLogic.RETAIN

    def on_notify(self):
        rows = self.windows.add((), self._now())
        return ([WindowedBatch([], rows)] if rows else []), StatefulBatchLogic.RETAIN

    def on_eof(self):
        rows = self.windows.close(2**62, keep=True)
        return ([WindowedBatch([], rows)] if rows else []), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self.windows.spec.wall_clock:
            return None
        at = self.windows.next_close_ms()
        return None if at is None else datetime.fromtimestamp(at / 1000, tz=timezone.utc)

    def snapshot(self) -> tuple:
        return self.windows.snapshot()


@operator
def event_time_windows(
    step_id: str,
    up: KeyedStream[list[Feedback]],
    spec: WindowSpec,
    now: Callable[[], int] = _now_ms,
) -> KeyedStream[WindowedBatch]:
    """Per-site tumbling windows over batches of events keyed by ``site_id``."""
    return op.stateful_batch(
        "windows", up, lambda snapshot: _WindowLogic(SiteWindows(spec, snapshot), now)
    )
