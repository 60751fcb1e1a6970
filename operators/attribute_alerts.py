"""Attribute alerts (the outer loop): trend, peer comparison and expectation, ranked by importance.

The bytewax shell of two stateful steps:
```
by site ─ sites (stateful, per site: one AttributeWatch per attribute, updated per response)
            └─ SiteSummary per batch ─ key by region ─ regions (stateful, per region) ─ alerts
                                                                                    └ importance
```
The site step (:mod:`operators.attribute_sites`) updates every (site, attribute) detector with each
response, so the evidence is judged on the response that makes it sufficient, not when a window
closes; it sends its region a summary of the attributes that moved and the responses' ratings for
the key-driver analysis. The region step (:mod:`operators.attribute_regions`) owns what needs
several sites: peer groups, importance, the alert lifecycle (:mod:`operators.attribute_lifecycle`)
and the regional incident. Both take their policy (detector parameters, severity, wording) from
one :class:`~operators.attribute_engine.AttributeAlertEngine`; :func:`operators.attribute_replay.replay`
runs the same states without bytewax.

Snapshots are plain data without configuration (:meth:`SiteState.snapshot`, :meth:`RegionState.snapshot`):
a run resumed under an edited ``[attribute_alerts]`` rebuilds every detector with the edited
parameters. A snapshot pickled whole by an earlier version (bytes) still loads, and is rebuilt the
same way.
"""

from __future__ import annotations

import pickle
import zlib
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.config.times import now_ms
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_regions import ImportanceSnapshot, RegionState
from boucle.operators.attribute_sites import SeriesWatch, SiteState, SiteSummary
from boucle.operators.decode import DecodedBatch, Feedback, internal_error
from boucle.operators.guard import batch_or_each, feedback_message, split_dead
from boucle.sources.message import RawMessage

__all__ = ["AttributeAlertsOut", "attribute_alerts"]

_State = TypeVar("_State", SiteState, RegionState)


def _resume(cls: type[_State], engine: AttributeAlertEngine, snapshot: dict[str, Any] | bytes) -> _State:
    """``cls`` rebuilt with ``engine`` from a plain snapshot, or from a state pickled whole (bytes, with
    the parameters of its day, which are dropped: its learnt state is rebuilt like a plain one)."""
    if isinstance(snapshot, bytes):
        snapshot = pickle.loads(snapshot).snapshot()
    return cls.from_snapshot(engine, snapshot)


class _SiteLogic(StatefulBatchLogic):
    """One site's :class:`SiteState`; only the state goes into the snapshot (the engine is the run's)."""

    def __init__(self, engine: AttributeAlertEngine, snapshot: dict[str, Any] | bytes | None) -> None:
        self.engine = engine
        self.state = SiteState() if snapshot is None else _resume(SiteState, engine, snapshot)

    def on_batch(self, values: list[list[Feedback]]):
        out: list[Any] = []
        for events in values:
            summaries, dead = batch_or_each("attribute_sites", self._add, events, feedback_message)
            out += summaries
            out += dead
        return out, StatefulBatchLogic.RETAIN

    def _add(self, events: list[Feedback]) -> list[SiteSummary]:
        summary = self.state.add(self.engine, events)
        return [] if summary is None else [summary]

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()


class _RegionLogic(StatefulBatchLogic):
    """One region's :class:`RegionState`; alerts of a batch share one detection time."""

    def __init__(self, engine: AttributeAlertEngine, snapshot: dict[str, Any] | bytes | None,
                 now: Callable[[], int]) -> None:
        self.engine = engine
        self.now = now
        self.state = RegionState(engine) if snapshot is None else _resume(RegionState, engine, snapshot)

    def on_batch(self, values: list[SiteSummary]):
        detected = self.now()
        out: list[Any] = []
        for summary in values:
            try:  # free unless it raises (CPython 3.11+)
                ended = self.state.roll_importance(self.engine, summary)
                if ended is not None:
                    out.append(ended)
                out.extend(self.state.add(self.engine, summary, detected))
                out.extend(summary.watch)
            except Exception as exc:  # noqa: BLE001 - one dead letter, never a crash loop
                out.append(internal_error("attribute_regions", summary_message(summary), exc))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self):
        # The day in progress, as far as it went; a resumed run re-emits it later, more complete.
        snapshot = self.state.importance_snapshot(self.engine)
        return ([snapshot] if snapshot is not None else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()


def summary_message(summary: SiteSummary) -> RawMessage:
    """What a region's dead letter points at: a site's summary (no single message made it)."""
    value = orjson.dumps({"site_id": summary.site_id, "region": summary.region, "t_ms": summary.t_ms})
    return RawMessage(value, "internal:attribute_regions", zlib.crc32(summary.site_id.encode()) & 0x7FFFFFFF,
                      summary.t_ms)


@dataclass(frozen=True)
class AttributeAlertsOut:
    """The alerts (attribute and regional incidents), each region's daily importance, the dead
    letters of what the steps failed on (:mod:`operators.guard`), and the series' status news."""

    alerts: Stream[dict[str, Any]]
    importance: Stream[ImportanceSnapshot]
    dead: Stream[DecodedBatch]
    watch: Stream[SeriesWatch] | None = None


def split_outputs(values: Stream[Any]) -> tuple[Stream[dict[str, Any]], Stream[ImportanceSnapshot],
                                                 Stream[SeriesWatch]]:
    """The region step's outputs by kind: alerts (dicts), importance snapshots, series status news."""
    split = op.branch("split", values, lambda item: isinstance(item, dict))
    rest = op.branch("split_rest", split.falses, lambda item: isinstance(item, ImportanceSnapshot))
    return split.trues, rest.trues, rest.falses


@operator
def attribute_alerts(
    step_id: str,
    up: KeyedStream[list[Feedback]],
    engine: AttributeAlertEngine,
    now: Callable[[], int] = now_ms,
) -> AttributeAlertsOut:
    """Attribute and regional-incident alerts, and each region's daily attribute importance, from
    batches of one site's events keyed by ``site_id``."""
    sites = split_dead("site_dead", op.stateful_batch("sites", up, lambda s: _SiteLogic(engine, s)))
    by_region = op.key_on("by_region", op.map("summary", sites.values, lambda kv: kv[1]), lambda s: s.region)
    out = op.stateful_batch("regions", by_region, lambda snapshot: _RegionLogic(engine, snapshot, now))
    regions = split_dead("region_dead", op.map("values", out, lambda kv: kv[1]))
    alerts, importance, watch = split_outputs(regions.values)
    return AttributeAlertsOut(alerts, importance, op.merge("dead", sites.dead, regions.dead), watch)
