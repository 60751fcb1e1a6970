"""The feedback dataflow: decode → per-site windows and hot alerts → warehouse, alert outputs.

```
raw ─decode─┬─ dead letters ───────────────────────────────────────────────┐
            ├─ by shard ─ duplicates out + windows ┬─ duplicates (dead letters) ┤
            │                                      ├─ feedback, score rows ─────┼─ batch per table ─ warehouse
            │                                      └─ site events ─ hot alerts ─┼─ (the loop: cases, SLA, themes)
            └─ by partition ─ partition clock ─ region order: attribute alerts ─┴─ alert rows, importance rows
                                                                                └─ alert outputs
```
The windows step is the first stateful one: it drops duplicates (first ``event_id`` wins) and
flags late events before anything else sees them, so hot alerts, the loop and the warehouse all
take the same version of every event. The attribute alerts take the decoded batches in partition
order instead and judge them in one canonical event-time order (:mod:`operators.attribute_order`),
applying the same first-wins rule, so that two runs of a topic agree.

The unit that travels is a batch (of messages, then of the events of a shard of sites, each site's
in arrival order: :mod:`operators.site_shards`): bytewax's per-item cost is paid per batch and
shard, whatever the number of sites, which is what lets one worker keep up with tens of thousands
of events per second.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, Source
from bytewax.outputs import FixedPartitionedSink, Sink

from boucle.config.settings import Settings
from boucle.flows.loop import LoopSources, add_loop
from boucle.flows.rows import (
    alert_rows,
    dead_letter_rows,
    dead_letter_text,
    importance_rows,
    series_status_rows,
    window_rows,
)
from boucle.flows.stats import RunStats
from boucle.flows.worker_threads import KeepThreadState
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_order import OrderSpec, ordered_attribute_alerts
from boucle.operators.batching import batch_rows
from boucle.operators.decode import DecodedBatch, Decoder, decode_batches
from boucle.operators.guard import split_dead
from boucle.operators.hot_alerts import HotAlertBuilder, hot_alerts
from boucle.operators.privacy import mask_pii, regions_for
from boucle.operators.ratings import scales_of
from boucle.operators.routing import spread, worker_of
from boucle.operators.site_shards import SiteShards
from boucle.operators.windows import WindowedBatch, WindowSpec, event_time_windows
from boucle.sinks.background import BackgroundSink
from boucle.sinks.batch import TableBatch
from boucle.sinks.prepare import drain_sinks, prepare_sinks

__all__ = ["DeadLetterRecord", "FlowOutputs", "build_flow", "dead_letter_records", "order_spec", "window_spec"]


@dataclass
class FlowOutputs:
    """Where the flow's results go; any of them may be left out (tests use a subset)."""

    warehouse: Sink[TableBatch] | None = None
    alerts: list[Sink[dict[str, Any]]] = field(default_factory=list)
    dead_letters: list[Sink[dict[str, Any]]] = field(default_factory=list)

    def prepare(self) -> None:
        """Connect every output before the stream starts (see :mod:`sinks.prepare`)."""
        prepare_sinks([self.warehouse, *self.alerts, *self.dead_letters])

    def drain(self) -> None:
        """Deliver what the outputs still hold after an interrupted run (see :mod:`sinks.prepare`)."""
        drain_sinks([self.warehouse, *self.alerts, *self.dead_letters])


def window_spec(settings: Settings, wall_clock: bool | None = None) -> WindowSpec:
    windows = settings.windows
    return WindowSpec(
        lengths_ms=[int(length.total_seconds() * 1000) for length in windows.lengths],
        lateness_ms=int(windows.allowed_lateness.total_seconds() * 1000),
        scales=scales_of(settings),
        region_of={site.id: site.region for site in settings.sites},
        zone_of={site: zone for site, zone in settings.site_zones().items() if zone},
        wall_clock=windows.close_on_wall_clock if wall_clock is None else wall_clock,
        dedup_horizon_ms=int(windows.dedup_horizon.total_seconds() * 1000),
    )


def order_spec(settings: Settings, source: Source, spec: WindowSpec, workers: int = 1) -> OrderSpec:
    """The attribute alerts' canonical order: it waits for every partition of ``source`` it can list;
    its regions are shared out evenly (by sites) over the cluster's ``workers``."""
    cfg = settings.attribute_alerts
    partitions = len(source.list_parts()) if isinstance(source, FixedPartitionedSource) else 0
    step = cfg.live_order_step if spec.wall_clock else cfg.order_step
    sites_per_region = Counter(spec.region_of.values())
    return OrderSpec(
        step_ms=int(step.total_seconds() * 1000), delay_ms=int(cfg.order_delay.total_seconds() * 1000),
        partitions=partitions, regions=tuple(sorted(sites_per_region)), region_of=spec.region_of,
        wall_clock=spec.wall_clock, dedup_horizon_ms=spec.dedup_horizon_ms,
        region_keys=spread(sites_per_region, workers),
    )


class DeadLetterRecord(dict):
    """What the dead-letter outputs receive for one :class:`~operators.decode.DeadLetter` (the
    rejected message and why): a plain JSON-ready dict ``{origin, partition, offset, reason_code,
    reason, raw}`` (``raw`` as text) that also carries the message bytes and key as the attributes
    ``value`` and ``key``, for sinks that forward a message (the Kafka DLQ): the original bytes with
    ``privacy.keep_raw``, else those of the masked ``raw``.

    >>> d = DeadLetterRecord({"raw": "{"}, value=b"{", key=b"store-0001")
    >>> d == {"raw": "{"}, d.value, d.key
    (True, b'{', b'store-0001')
    """

    def __init__(self, fields: dict[str, Any], value: bytes, key: bytes | None = None) -> None:
        super().__init__(fields)
        self.value = value
        self.key = key

    def __reduce__(self):
        return (DeadLetterRecord, (dict(self), self.value, self.key))


def _dead_letter_records(batch: DecodedBatch, keep_raw: bool = False) -> list[DeadLetterRecord]:
    """Unless ``keep_raw`` (``privacy.keep_raw``), ``raw``, ``reason`` and the bytes forwarded to the
    Kafka DLQ are the masked text (:func:`flows.rows.dead_letter_text`)."""
    records = []
    for d in batch.rejected:
        raw = dead_letter_text(d.message.value, keep_raw)
        records.append(DeadLetterRecord(
            {
                "origin": d.message.origin,
                "partition": d.message.partition,
                "offset": d.message.offset,
                "reason_code": d.reason_code,
                "reason": d.reason if keep_raw else mask_pii(d.reason),
                "raw": raw,
            },
            d.message.value if keep_raw else raw.encode("utf-8"),
            d.message.key,
        ))
    return records


dead_letter_records = _dead_letter_records  # the same records for inputs read outside the flow (boucle import)


def _duplicate_batches(windowed: list[tuple[str, list[tuple[str, WindowedBatch]]]]) -> list[DecodedBatch]:
    """The duplicates' dead letters of a bytewax batch of windowed shard items, as one rejected-only batch."""
    dead = [d for _, pairs in windowed for _, batch in pairs for d in batch.duplicates]
    return [DecodedBatch([], dead, 0)] if dead else []


def _site_events(item: tuple[str, list[tuple[str, WindowedBatch]]]):
    """A windowed shard item's events per site (duplicates out), or None when it has none."""
    shard, pairs = item
    events = [(site, batch.events) for site, batch in pairs if batch.events]
    return (shard, events) if events else None


def _inspect_batches(step_id: str, items, callback) -> None:
    """``op.inspect`` a bytewax batch at a time: one Python call per batch, not per item."""
    op.flat_map_batch(step_id, items, lambda batch: callback(batch) or [])


def _for_sink(step_id: str, items, sink: Sink):
    """Items as a sink takes them: fixed-partitioned sinks (Kafka) get ``(site_id, item)`` pairs, or
    ``(region, item)`` for an alert of no site (a regional incident is keyed and routed by region)."""
    if isinstance(sink, FixedPartitionedSink):
        return op.key_on(
            step_id, items,
            lambda item: str(item.get("site_id") or item.get("region") or "") if isinstance(item, dict) else "",
        )
    return items


def build_flow(
    settings: Settings,
    source: Source,
    outputs: FlowOutputs,
    stats: RunStats | None = None,
    *,
    flow_id: str = "boucle",
    wall_clock: bool | None = None,
    loop: LoopSources | None = None,
    live: bool = False,
    workers: int = 1,
) -> Dataflow:
    """``loop``: also close the loop (cases, SLA, invitations, comment themes; see :mod:`flows.loop`).
    ``live``: the source follows a stream as it happens (event times bounded on both sides, see
    :class:`~operators.decode.Decoder`). ``workers``: the cluster's workers (all processes), over
    which the keyed steps with few keys are shared out (:mod:`operators.routing`)."""
    spec = window_spec(settings, wall_clock)
    flow = Dataflow(flow_id)
    op.input("worker_thread_state", flow, KeepThreadState())  # before any step runs: see the module
    raw = op.input("input", flow, source)
    decoded = decode_batches("decode", raw, Decoder(settings, live=live))
    shards = settings.state.site_shards
    by_shard = op.flat_map("by_shard", decoded, SiteShards(shards))
    # The first stateful step: duplicates out, lateness flagged; every later step sees its events.
    windowed = event_time_windows("windows", by_shard, spec, shards)
    site_events = op.filter_map("site_events", windowed, _site_events)
    duplicates = op.flat_map_batch("duplicates", windowed, _duplicate_batches)
    hot = split_dead("hot_dead", hot_alerts("hot", site_events, HotAlertBuilder(settings), shards, spec.wall_clock))
    alerts = hot.values
    guard_dead = hot.dead
    dead_batches, extra_tables = op.merge("decode_dead", decoded, duplicates), []
    if settings.attribute_alerts.enabled:
        # After the hot alerts feed the loop: cases are opened for hot alerts only.
        # Fed in partition order, not from the windows: its own slots make two runs of a topic agree.
        attribute = ordered_attribute_alerts(
            "attribute", decoded, AttributeAlertEngine(settings), order_spec(settings, source, spec, workers)
        )
        extra_tables.append(op.flat_map("importance_rows", attribute.importance, importance_rows))
        extra_tables.append(op.flat_map_batch("series_status_rows", attribute.watch, series_status_rows))
        if stats is not None:
            _inspect_batches("count_watched", attribute.watch, stats.on_watch)
        guard_dead = op.merge("guard_dead", guard_dead, attribute.dead)
    # What a step after decoding failed on (operators.guard): dead letters too.
    dead_batches = op.merge("with_guard_dead", dead_batches, guard_dead)
    if stats is not None:
        op.inspect("count_guard_dead", guard_dead, stats.on_decoded)
    if loop is not None:
        closing = add_loop(flow, settings, decoded, site_events, alerts, loop)
        alerts = op.merge("all_alerts", alerts, closing.alerts)
        dead_batches = op.merge("all_dead", dead_batches, closing.dead)
        extra_tables.append(closing.tables)
        if stats is not None:
            op.inspect("count_loop_dead", closing.dead, stats.on_decoded)
    if settings.attribute_alerts.enabled:
        alerts = op.merge("with_attribute_alerts", alerts, attribute.alerts)
    if stats is not None:
        op.inspect("count_decoded", decoded, stats.on_decoded)
        op.inspect("count_duplicates", duplicates, stats.on_duplicates)
        op.inspect("count_windowed", windowed, stats.on_windowed)
        _inspect_batches("count_alerts", alerts, stats.on_alerts)

    for i, sink in enumerate(outputs.alerts):
        op.output(f"alerts_out_{i}", _for_sink(f"alerts_key_{i}", alerts, sink), sink)
    if outputs.dead_letters:
        keep_raw = settings.privacy.keep_raw
        dead = op.flat_map("dead_letter_dicts", dead_batches, lambda b: _dead_letter_records(b, keep_raw))
        for i, sink in enumerate(outputs.dead_letters):
            op.output(f"dead_letters_out_{i}", _for_sink(f"dead_letters_key_{i}", dead, sink), sink)

    if outputs.warehouse is not None:
        region_of, zone_of = spec.region_of, spec.zone_of
        keep_raw = settings.privacy.keep_raw
        phone_regions = {site.id: regions_for(site.country) for site in settings.sites}
        tables = op.merge(
            "tables",
            op.flat_map("dead_letter_rows", dead_batches, lambda b: dead_letter_rows(b, keep_raw)),
            # One step for both tables of a windowed shard item: bytewax's per-item cost paid once.
            op.flat_map("window_rows", windowed, lambda kv: window_rows(kv[1], region_of, phone_regions, zone_of)),
            op.flat_map_batch("alert_rows", alerts, lambda batch: alert_rows(batch, zone_of)),
            *extra_tables,
        )
        batches = batch_rows(
            "batch_rows", tables, settings.warehouse.batch_rows, settings.warehouse.flush_interval
        )
        warehouse = outputs.warehouse
        if isinstance(warehouse, BackgroundSink):
            # Each worker writes the tables its buffers hold: keyed by table, as the buffers are.
            warehouse = warehouse.over(workers, partial(worker_of, workers=workers))
            batches = op.key_on("warehouse_key", batches, lambda batch: batch.table)
        else:
            batches = _for_sink("warehouse_key", batches, warehouse)
        op.output("warehouse", batches, warehouse)
    return flow
