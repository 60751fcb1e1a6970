"""Attribute alerts in one canonical event-time order, whatever the batches and the partitions.

A region's decisions (peer comparisons, the regional incident, holds, importance) depend on the
order in which its sites' responses are taken. Fed straight from the source, that order is the
interleaving of input partitions and the composition of each poll, which differ between two runs
of the same topic; so did the alerts. Here the responses are taken in slots of ``step_ms`` of event
time, a slot only once every input partition has passed it, a region's sites in a slot by site id,
a site's responses by ``(occurred_at, event_id)``:

```
decoded ─ by partition ─ partition clock (per partition: progress, each response's slot)
            └─ to every region ─ region order (per region: slots released in order → site and
                                 region states of operators.attribute_sites / attribute_regions)
```
The partition clock also sums the key-driver moments of its responses per slot (one
:class:`~detectors.KeyDriverImportance` per slot, every region's responses) and sends them to
every region with its share; a region pools them into its network prior when it releases the
slot, so the prior is the whole network's, in the same canonical order, at the cost of one more
learning step per response (not one per region).

The partition clock gives each response a slot from the partition's own order: its event-time
slot, or, for a response older than the partition's progress (its second-highest time, as in
:mod:`operators.windows`) less ``delay_ms``, the slot of that progress: a slot a region may not
have released yet, since a region releases a slot only when every partition's progress less
``delay_ms`` has passed its end. Out-of-order responses are therefore never dropped, only taken
a little later. At the end of the input every slot is released.

Live sources (``wall_clock``): a quiet partition's progress is extrapolated by the wall time
since it was last read, and partitions never read do not hold the others back; the decisions
then follow the wall clock and two runs may differ. The price of the order is latency: an
attribute alert is decided up to ``step_ms`` + ``delay_ms`` of event time after its response.

Duplicates are resolved as in the windows step (first ``event_id`` of a site wins, the same
position again is a re-delivery), from the same per-site arrival order; the windows step
dead-letters them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic

from boucle.config.times import now_ms
from boucle.detectors import KeyDriverImportance
from boucle.operators.attribute_alerts import AttributeAlertsOut, split_outputs, summary_message
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_regions import RegionState
from boucle.operators.attribute_sites import SiteState
from boucle.operators.decode import DecodedBatch, Feedback, internal_error
from boucle.operators.dedup import SeenEvents
from boucle.operators.guard import batch_or_each, feedback_message, split_dead

__all__ = ["OrderSpec", "ordered_attribute_alerts"]

_NEVER = -(2**62)


@dataclass(frozen=True)
class OrderSpec:
    """Slots of ``step_ms``, the reorder ``delay_ms``, how many input partitions must report
    before anything is released (0: those seen so far), the regions, and the clock."""

    step_ms: int
    delay_ms: int
    partitions: int
    regions: tuple[str, ...]
    region_of: dict[str, str]
    wall_clock: bool = False
    dedup_horizon_ms: int = 86_400_000
    # region -> the key its share travels under (operators.routing.spread: regions even over the
    # workers); a region missing here travels under its own name.
    region_keys: Mapping[str, str] = field(default_factory=dict)


def by_partition(batch: DecodedBatch) -> list[tuple[str, list[Feedback]]]:
    """Key a decoded batch by input partition, keeping each partition's order."""
    groups: dict[str, list[Feedback]] = {}
    for event in batch.accepted:
        key = event.position.rpartition(":")[0]  # origin:partition
        group = groups.get(key)
        if group is None:
            groups[key] = [event]
        else:
            group.append(event)
    return list(groups.items())


class _PartitionClock(StatefulBatchLogic):
    """One partition's progress; stamps each response with its slot and sends every region its share."""

    def __init__(self, spec: OrderSpec, snapshot: tuple | None, engine: AttributeAlertEngine | None = None) -> None:
        self.spec = spec
        self.engine = engine
        self.key, self.top, self.progress = snapshot if snapshot is not None else ("", _NEVER, _NEVER)

    def on_batch(self, values: list[list[Feedback]]):
        spec = self.spec
        step, delay, region_of = spec.step_ms, spec.delay_ms, spec.region_of
        top, progress = self.top, self.progress
        shares: dict[str, list[tuple[int, Feedback]]] = {}
        for events in values:
            for event in events:
                ts = event.ts_ms
                slot = ts - ts % step
                if progress != _NEVER:
                    floor = progress - delay
                    floor -= floor % step
                    if slot < floor:
                        slot = floor
                region = region_of.get(event.site_id, "")
                share = shares.get(region)
                if share is None:
                    shares[region] = [(slot, event)]
                else:
                    share.append((slot, event))
                if ts > progress:
                    if ts > top:
                        progress, top = top, ts
                    else:
                        progress = ts
            if events:
                self.key = events[0].position.rpartition(":")[0]
        self.top, self.progress = top, progress
        key, keys = self.key, spec.region_keys
        network = self._network(shares)
        return ([(keys.get(region, region), (key, progress, shares.get(region, ()), network)) for region in spec.regions],
                StatefulBatchLogic.RETAIN)

    def _network(self, shares: dict[str, list[tuple[int, Feedback]]]) -> list[tuple[int, dict[str, Any]]]:
        """``[(slot, KeyDriverImportance.state())]``: the key-driver moments of the batch's responses
        per slot, the way a region learns them (target and attributes answered)."""
        engine = self.engine
        if engine is None:
            return []
        target = engine.cfg.importance_target
        by_slot: dict[int, list[tuple[dict[str, int], float]]] = {}
        for share in shares.values():
            for slot, event in share:
                y = event.scores.get(target)
                if y is not None and event.attributes:
                    by_slot.setdefault(slot, []).append((event.attributes, float(y)))
        out = []
        # Every response of a slot is learnt at the slot's start with weight 1: the moments are sums of
        # integers, exact in floating point, so the deltas of a slot add up to the same numbers in
        # whatever order and batches the partitions deliver them (two runs agree to the last bit).
        for slot in sorted(by_slot):
            delta = KeyDriverImportance(**engine.importance_params)
            delta.learn_many(by_slot[slot], slot)
            out.append((slot, delta.state()))
        return out

    def snapshot(self) -> tuple:
        return self.key, self.top, self.progress


def _plain(event: Feedback) -> tuple:
    return event.event_id, event.ts_ms, event.site_id, event.scores, event.attributes, event.position


def _event(plain: tuple) -> Feedback:
    event_id, ts, site, scores, attributes, position = plain
    return Feedback(event_id, ts, site, "", "", scores, attributes, "", "", {}, 0, position)


class _RegionOrder(StatefulBatchLogic):
    """One region's sites and region state, fed slot by slot in the canonical order."""

    def __init__(self, engine: AttributeAlertEngine, spec: OrderSpec, snapshot: dict[str, Any] | None,
                 now: Callable[[], int]) -> None:
        self.engine, self.spec, self.now = engine, spec, now
        self.sites: dict[str, SiteState] = {}
        self.region = RegionState(engine)
        self.pending: dict[int, list[Feedback]] = {}  # slot start -> responses
        self.progress: dict[str, int] = {}  # partition -> progress (event time)
        self.read_at: dict[str, int] = {}  # partition -> wall time it was last read (live sources)
        self.seen: dict[str, SeenEvents] = {}
        self.network: dict[int, KeyDriverImportance] = {}  # slot start -> the network's moments of it
        # Each site's snapshot as last taken, until the site learns again: an epoch's snapshot then
        # costs the sites that changed in it, not every site of the region.
        self.snapshots: dict[str, dict[str, Any]] = {}
        if snapshot is not None:
            self.sites = {site: SiteState.from_snapshot(engine, s) for site, s in snapshot["sites"].items()}
            self.region = RegionState.from_snapshot(engine, snapshot["region"])
            self.pending = {slot: [_event(p) for p in events] for slot, events in snapshot["pending"]}
            self.progress = dict(snapshot["progress"])
            self.seen = {site: SeenEvents(spec.dedup_horizon_ms, ids) for site, ids in snapshot["seen"].items()}
            self.network = {slot: KeyDriverImportance.from_state(state, **engine.importance_params)
                            for slot, state in snapshot.get("network", ())}
            if spec.wall_clock:  # downtime is no progress: quiet partitions count from the restart
                self.read_at = {part: now() for part in self.progress}

    def on_batch(self, values: list[tuple[str, int, list[tuple[int, Feedback]]]]):
        pending, seen, horizon = self.pending, self.seen, self.spec.dedup_horizon_ms
        wall = self.now() if self.spec.wall_clock else None
        network, params = self.network, self.engine.importance_params
        for part, progress, share, *deltas in values:
            for slot, state in deltas[0] if deltas else ():
                delta = KeyDriverImportance.from_state(state, **params)
                if slot in network:
                    network[slot].add(delta)
                else:
                    network[slot] = delta
            for slot, event in share:
                ids = seen.get(event.site_id)
                if ids is None:
                    ids = seen[event.site_id] = SeenEvents(horizon)
                prior = ids.first.get(event.event_id)
                if prior is None:
                    ids.first[event.event_id] = (event.ts_ms, event.position)
                    events = pending.get(slot)
                    if events is None:
                        pending[slot] = [event]
                    else:
                        events.append(event)
            if progress > self.progress.get(part, _NEVER):
                self.progress[part] = progress
            if wall is not None:
                self.read_at[part] = wall
        return self._release(self._horizon(wall)), StatefulBatchLogic.RETAIN

    def _horizon(self, wall: int | None) -> int:
        """Slots ending at or before this may be released: every partition has passed them."""
        progress = self.progress
        if not progress:
            return _NEVER
        if wall is None:
            if len(progress) < self.spec.partitions:
                return _NEVER
            return min(progress.values()) - self.spec.delay_ms
        read_at = self.read_at
        return min(p + max(0, wall - read_at.get(part, wall)) for part, p in progress.items()) - self.spec.delay_ms

    def _release(self, horizon: int) -> list[Any]:
        step, pending = self.spec.step_ms, self.pending
        ready = sorted(slot for slot in pending.keys() | self.network.keys() if slot + step <= horizon)
        if not ready:
            return []
        engine, region, sites = self.engine, self.region, self.sites
        detected = self.now()
        out: list[Any] = []
        for slot in ready:
            delta = self.network.pop(slot, None)
            if delta is not None:
                region.learn_network(delta)
            by_site: dict[str, list[Feedback]] = {}
            for event in pending.pop(slot, ()):
                by_site.setdefault(event.site_id, []).append(event)
            for site_id in sorted(by_site):
                events = sorted(by_site[site_id], key=lambda e: (e.ts_ms, e.event_id))
                state = sites.get(site_id)
                if state is None:
                    state = sites[site_id] = SiteState()
                self.snapshots.pop(site_id, None)
                summaries, dead = batch_or_each("attribute_sites", _site_step(engine, state), events, feedback_message)
                out += dead
                for summary in summaries:
                    try:  # free unless it raises (CPython 3.11+)
                        ended = region.roll_importance(engine, summary)
                        if ended is not None:
                            out.append(ended)
                        out.extend(region.add(engine, summary, detected))
                        out.extend(summary.watch)
                    except Exception as exc:  # noqa: BLE001 - one dead letter, never a crash loop
                        out.append(internal_error("attribute_regions", summary_message(summary), exc))
        if self.progress:  # a partition with a single response has no progress yet
            latest = max(self.progress.values())
            for ids in self.seen.values():
                ids.forget_before(latest)
        return out

    def on_notify(self):
        return self._release(self._horizon(self.now())), StatefulBatchLogic.RETAIN

    def notify_at(self) -> datetime | None:
        # Live sources: look again a step of wall time later while slots wait for quiet partitions.
        if not self.spec.wall_clock or not self.pending:
            return None
        return datetime.now(timezone.utc) + timedelta(milliseconds=min(self.spec.step_ms, 5_000))

    def on_eof(self):
        out = self._release(2**62)
        # The day in progress, as far as it went; a resumed run re-emits it later, more complete.
        snapshot = self.region.importance_snapshot(self.engine)
        return out + ([snapshot] if snapshot is not None else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return {
            "sites": {site: self._site_snapshot(site, state) for site, state in self.sites.items()},
            "region": self.region.snapshot(),
            "pending": [(slot, [_plain(e) for e in events]) for slot, events in self.pending.items()],
            "progress": dict(self.progress),
            "seen": {site: ids.snapshot() for site, ids in self.seen.items()},
            "network": [(slot, delta.state()) for slot, delta in self.network.items()],
        }


    def _site_snapshot(self, site: str, state: SiteState) -> dict[str, Any]:
        taken = self.snapshots.get(site)
        if taken is None:
            taken = self.snapshots[site] = state.snapshot()
        return taken


def _site_step(engine: AttributeAlertEngine, state: SiteState) -> Callable[[list[Feedback]], list[Any]]:
    """One site's responses of a slot through its state, as :func:`~operators.guard.batch_or_each` runs it."""
    def add(events: list[Feedback]) -> list[Any]:
        summary = state.add(engine, events)
        return [] if summary is None else [summary]
    return add


@operator
def ordered_attribute_alerts(
    step_id: str,
    up: Stream[DecodedBatch],
    engine: AttributeAlertEngine,
    spec: OrderSpec,
    now: Callable[[], int] = now_ms,
) -> AttributeAlertsOut:
    """Attribute and regional-incident alerts and each region's daily importance, from decoded
    batches, decided in the canonical order (see the module)."""
    keyed = op.flat_map("by_partition", up, by_partition)
    shares = op.stateful_batch("partition_clock", keyed, lambda snapshot: _PartitionClock(spec, snapshot, engine))
    by_region = op.map("to_region", shares, lambda kv: kv[1])  # (region, (partition, progress, share, network))
    out = op.stateful_batch("regions", by_region, lambda snapshot: _RegionOrder(engine, spec, snapshot, now))
    regions = split_dead("region_dead", op.map("values", out, lambda kv: kv[1]))
    alerts, importance, watch = split_outputs(regions.values)
    return AttributeAlertsOut(alerts, importance, regions.dead, watch)
