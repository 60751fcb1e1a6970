"""What a run did, counted as it goes: read by the progress bar and the final summary."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from boucle.config.settings import Metric
from boucle.operators.decode import DecodedBatch, Feedback
from boucle.operators.windows import WindowedBatch

__all__ = ["RunStats", "UNUSED_HALF_MIN_ANSWERS"]

# Answers a question needs, all in the lower half of its scale, before the summary warns about it.
UNUSED_HALF_MIN_ANSWERS = 30


@dataclass
class RunStats:
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    late: int = 0
    score_rows: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    alerts_by_kind: Counter = field(default_factory=Counter)
    alerts_by_severity: Counter = field(default_factory=Counter)
    alerts_by_site: Counter = field(default_factory=Counter)
    alert_states: Counter = field(default_factory=Counter)  # (kind, status) of the later states: updated, resolved
    hot_by_site_day: Counter = field(default_factory=Counter)  # (site_id, "YYYY-MM-DD") -> hot alerts published
    held_by_site_day: Counter = field(default_factory=Counter)  # (site_id, day) -> hot alerts held by the rate cap
    watched: dict[tuple[str, str], bool] = field(default_factory=dict)  # (site, question) -> watched
    # Questions no answer has yet put above the middle of their scale (name -> middle), and their
    # answers so far: a 1-5 rating sent on a 0-10 scale. A question leaves at its first high answer,
    # so once every question has been seen high the check costs nothing per event.
    lower_half: dict[str, float] = field(default_factory=dict)
    lower_half_answers: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # bytewax ``inspect`` callbacks: (step_id, item); workers may be threads of one process.
    # ``on_alerts`` takes a whole bytewax batch (one call per batch, not per alert): see
    # ``flows.feedback_flow._inspect_batches``.
    def on_decoded(self, _step: str, batch: DecodedBatch) -> None:
        with self._lock:
            self.read += batch.read
            self.accepted += len(batch.accepted)
            self.rejected += len(batch.rejected)
            self.rejected_by_reason.update(d.reason_code for d in batch.rejected)
            if self.lower_half:
                self._scan_scales(batch.accepted)

    def watch_scales(self, questions: dict[str, Metric]) -> None:
        """Count, per question, answers until one lands in the upper half of its scale."""
        self.lower_half = {name: (m.min + m.max) / 2 for name, m in questions.items()}

    def _scan_scales(self, events: list[Feedback]) -> None:
        lower, counts = self.lower_half, self.lower_half_answers
        for event in events:
            for answers in (event.scores, event.attributes):
                for name, value in answers.items():
                    middle = lower.get(name)
                    if middle is None:
                        continue
                    if value > middle:
                        del lower[name]
                        counts.pop(name, None)
                    else:
                        counts[name] += 1

    @property
    def unused_upper_half(self) -> dict[str, int]:
        """Questions answered at least UNUSED_HALF_MIN_ANSWERS times, never above their scale's middle."""
        with self._lock:
            return {name: n for name, n in self.lower_half_answers.items()
                    if n >= UNUSED_HALF_MIN_ANSWERS and name in self.lower_half}

    def on_duplicates(self, _step: str, batch: DecodedBatch) -> None:
        """Duplicates were decoded (counted accepted) and then dead-lettered by the windows step."""
        with self._lock:
            self.accepted -= len(batch.rejected)
            self.rejected += len(batch.rejected)
            self.rejected_by_reason.update(d.reason_code for d in batch.rejected)

    def on_windowed(self, _step: str, keyed: tuple[str, list[tuple[str, WindowedBatch]]]) -> None:
        """A windowed shard item: its sites' late events and closed windows' rows."""
        pairs = keyed[1]
        with self._lock:
            self.late += sum(batch.late for _, batch in pairs)
            self.score_rows += sum(len(batch.rows) for _, batch in pairs)

    def on_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Alerts opened by kind, severity and site; later states (a hot alert updated or resolved by its
        case) apart; hot alerts per site and UTC day, published and held by the rate cap."""
        opened = [a for a in alerts if a["status"] == "open"]
        with self._lock:
            if len(opened) < len(alerts):
                self.alert_states.update([(a["kind"], a["status"]) for a in alerts if a["status"] != "open"])
            self.alerts_by_kind.update([a["kind"] for a in opened])
            self.alerts_by_severity.update([a["severity"] for a in opened])
            self.alerts_by_site.update([a["site_id"] for a in opened])
            self.hot_by_site_day.update([(a["site_id"], a["event_time"][:10]) for a in opened if a["kind"] == "hot"])
            for a in opened:
                if a["kind"] == "hot_digest":
                    self.held_by_site_day[(a["site_id"], a["evidence"]["day"])] += a["evidence"]["held"]

    def on_watch(self, news: list[Any]) -> None:
        """The series' status news (:class:`~operators.attribute_sites.SeriesWatch`): the latest wins."""
        with self._lock:
            for w in news:
                self.watched[(w.site_id, w.question)] = w.watched

    @property
    def series_watched(self) -> tuple[int, int]:
        """(series watched, series seen) by the attribute alerts."""
        with self._lock:
            return sum(self.watched.values()), len(self.watched)

    def finish(self) -> None:
        self.finished = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started
