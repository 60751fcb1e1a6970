"""The closing of the loop, as extra branches of the feedback dataflow (issue #6).

```
decoded ─ ticks (event time, one per shard) ──────────────┐
hot alerts ─ by shard ─┬─ [frontline simulator] ─ case events + ticks ─┐
case-events topic ─────┼────────────────────── decode ─────────────────┴─ case tracker ─┬─ cases rows
                       └───────────────────────────────────────────────────────────────┤ case_sla alerts
                                                                                       └ unknown alerts → DLQ
decoded ─ [invitation simulator] / invitations topic ─ invitations rows
by shard of sites ─ comment themes ─ comment_themes rows, theme_surge alerts
```
Hot alerts and their case events meet on a shard key (a hash of the alert id), so a shard's state
is small and the work spreads over workers. The shards' clock is the feedback stream's event time:
each decoded batch sends its latest ``occurred_at`` to every shard. In simulation the frontline
simulator forwards each tick *after* the case events it released for it, so the tracker never
judges an SLA before seeing the actions taken in time. The comment themes are per site, keyed like
the windows by shard of sites (:mod:`operators.site_shards`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic

from boucle.config.settings import Settings
from boucle.operators.cases import (
    CaseEvent,
    CaseTracker,
    case_rows,
    decode_case_event,
    shard_of,
    track_cases,
)
from boucle.operators.decode import DeadLetter, DecodedBatch, internal_error
from boucle.operators.invitations import Invitation, decode_invitation, invitation_rows
from boucle.operators.themes import comment_themes
from boucle.sinks.batch import TableBatch
from boucle.sources.simulator.frontline import FrontlineSimulator, InvitationSimulator

__all__ = ["LoopSources", "LoopStreams", "add_loop"]


@dataclass
class LoopSources:
    """Where case events and invitations come from: topics (sources of :class:`RawMessage`), or
    ``simulate`` (the frontline reacts to the flow's own hot alerts; invitations derive from the
    responses), seeded by ``seed``."""

    case_events: Source | None = None
    invitations: Source | None = None
    simulate: bool = False
    seed: int = 42
    # A replay of history: case deadlines that passed before this time (epoch ms) are history, with
    # their outcome unknown and no case_sla alert (0: every deadline is judged, as live).
    history_before_ms: int = 0


@dataclass
class LoopStreams:
    alerts: Stream  # case_sla and theme_surge alerts, hot alerts updated/resolved by their case (dicts)
    tables: Stream  # TableBatch: cases, invitations, comment_themes
    dead: Stream  # DecodedBatch with rejected items only (case events, invitations)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


class _FrontlineLogic(StatefulBatchLogic):
    def __init__(self, seed: int, snapshot: tuple | None) -> None:
        self.sim = FrontlineSimulator(seed, state=snapshot)

    def on_batch(self, values):
        out, alerts = [], []
        for kind, item in values:
            if kind == "alert":
                alerts.append(item)
                continue
            self._plan(alerts)
            out += [("msg", m) for m in self.sim.release(item)]
            out.append(("tick", item))
        self._plan(alerts)
        return out, StatefulBatchLogic.RETAIN

    def _plan(self, alerts: list[dict[str, Any]]) -> None:
        """The alerts that came between two ticks, in alert_id order: the simulator numbers its messages in
        the order it plans them, which must not depend on how the upstream steps interleave the alerts."""
        alerts.sort(key=lambda a: a.get("alert_id", ""))
        for alert in alerts:
            try:  # a simulator's bug on one alert costs that alert's case events, not the flow
                self.sim.on_alert(alert)
            except Exception:  # noqa: BLE001 - simulated input: nothing to dead-letter
                continue
        alerts.clear()

    def snapshot(self) -> tuple:
        return self.sim.snapshot()


def _route_case_item(kv: tuple[str, tuple[str, Any]]) -> list[tuple[str, tuple[str, Any]]]:
    shard, (kind, item) = kv
    if kind != "msg":
        return [kv]
    decoded = decode_case_event(item)
    if isinstance(decoded, CaseEvent):
        return [(shard, ("event", decoded))]
    return [(shard, ("dead", decoded))]


def _route_simulated_item(kv: tuple[str, tuple[str, Any]]) -> list[tuple[str, tuple[str, Any]]]:
    """:func:`_route_case_item` for the frontline simulator's output, whose messages get their
    shard's number as partition: each shard numbers its own messages from 0, so without it two
    shards' messages (and their dead letters, keyed by origin, partition, offset) would share an
    identity. A replay from a snapshot numbers them again the same way (the counter is in the state)."""
    shard, (kind, item) = kv
    if kind == "msg":
        item = replace(item, partition=int(shard.rpartition("-")[2]))
    return _route_case_item((shard, (kind, item)))


def add_loop(
    flow: Dataflow,
    settings: Settings,
    decoded: Stream[DecodedBatch],
    site_events: Stream,
    hot: Stream[dict[str, Any]],
    sources: LoopSources,
) -> LoopStreams:
    """The loop's branches, configured by the ``cases`` and ``themes`` sections of ``settings``;
    ``site_events``: the windows' shard items of each site's events (:mod:`operators.site_shards`)."""
    cases, themes = settings.cases, settings.themes
    sites = settings.site_map()
    region_of = {s.id: s.region for s in sites.values()}
    shards = cases.shards
    names = [f"cases-{i}" for i in range(shards)]

    def ticks(batch: DecodedBatch):
        if not batch.accepted:
            return []
        latest = max(e.ts_ms for e in batch.accepted)
        return [(name, ("tick", latest)) for name in names]

    tick_stream = op.flat_map("loop_ticks", decoded, ticks)
    hot_keyed = op.filter_map(
        "loop_hot",
        hot,
        lambda a: (shard_of(a["alert_id"], shards), ("alert", a)) if a.get("kind") == "hot" else None,
    )
    tracker_inputs = [hot_keyed]
    dead_parts: list[Stream] = []
    if sources.simulate:
        seed = sources.seed
        front = op.stateful_batch(
            "frontline_sim", op.merge("frontline_in", hot_keyed, tick_stream), lambda s: _FrontlineLogic(seed, s)
        )
        routed = op.flat_map("frontline_decode", front, _route_simulated_item)
    else:
        routed = tick_stream
    if sources.case_events is not None:
        raw = op.input("case_events_in", flow, sources.case_events)
        keyed_raw = op.map("case_events_key", raw, lambda m: (_shard_of_raw(m, shards), ("msg", m)))
        routed = op.merge("case_events_merge", routed, op.flat_map("case_events_decode", keyed_raw, _route_case_item))
    tracker_inputs.append(op.filter("case_items", routed, lambda kv: kv[1][0] != "dead"))
    dead_parts.append(op.filter_map("case_dead", routed, lambda kv: kv[1][1] if kv[1][0] == "dead" else None))

    tracked = track_cases("cases", op.merge("cases_in", *tracker_inputs), lambda state: CaseTracker(
        sites, cases, state, history_before_ms=sources.history_before_ms, follow_cases=cases.follow_hot_alerts))
    alerts = [op.filter_map("case_alerts", tracked, lambda t: t[1] if t[0] == "alert" else None)]
    tables = [op.flat_map_batch("case_rows", tracked, lambda items: case_rows(r for k, r in items if k == "case"))]
    dead_parts.append(op.filter_map("case_unknown", tracked, lambda t: t[1] if t[0] == "dead" else None))

    if sources.simulate:
        invite = InvitationSimulator(sources.seed)

        def simulated(batches: list[DecodedBatch]) -> list[TableBatch]:
            invitations = [
                inv
                for batch in batches
                for e in batch.accepted
                for inv in invite.for_response(e.event_id, e.ts_ms, e.site_id, e.channel,
                                               str(e.customer.get("id") or ""), e.customer.get("consent_contact") is True)
            ]
            return invitation_rows(invitations, region_of)

        tables.append(op.flat_map_batch("invitations_sim", decoded, simulated))
    if sources.invitations is not None:
        known = frozenset(sites)
        raw_inv = op.input("invitations_in", flow, sources.invitations)
        inv = op.map("invitations_decode", raw_inv, lambda m: _decode_invitation(m, known))
        tables.append(op.flat_map_batch(
            "invitation_rows", inv, lambda items: invitation_rows([i for i in items if isinstance(i, Invitation)], region_of)
        ))
        dead_parts.append(op.filter("invitations_dead", inv, lambda i: isinstance(i, DeadLetter)))

    lexicons = settings.theme_lexicons()
    if themes.enabled and lexicons:  # no cues in the catalogue: nothing to theme (the summary says so)
        themed = comment_themes("themes", site_events, sites, themes, lexicons, _ms(settings.windows.allowed_lateness),
                                settings.state.site_shards, settings.site_zones())
        tables.append(op.flat_map_batch("theme_rows", themed, lambda items: _theme_rows([r for k, r in items if k == "row"])))
        alerts.append(op.filter_map("theme_alerts", themed, lambda t: t[1] if t[0] == "alert" else None))
        dead_parts.append(op.filter_map("theme_dead", themed, lambda t: t[1] if t[0] == "dead" else None))

    dead = op.flat_map_batch(
        "loop_dead", op.merge("loop_dead_in", *dead_parts), lambda items: [DecodedBatch([], list(items), 0)]
    )
    return LoopStreams(
        alerts=op.merge("loop_alerts", *alerts), tables=op.merge("loop_tables", *tables), dead=dead
    )


def _decode_invitation(message, known: frozenset[str]):
    try:
        return decode_invitation(message, known)
    except Exception as exc:  # noqa: BLE001 - a bug costs one dead letter, never the flow
        return internal_error("invitations_decode", message, exc)


def _theme_rows(rows: list[tuple]) -> list[TableBatch]:
    from boucle.operators.themes import THEME_COLUMNS

    return [TableBatch("comment_themes", THEME_COLUMNS, rows)] if rows else []


def _shard_of_raw(message, shards: int) -> str:
    """The shard of a raw case event: by its alert id when readable (else any shard: it is dead anyway)."""
    import orjson

    try:
        aid = orjson.loads(message.value).get("alert_id")
    except Exception:  # noqa: BLE001 - decoded (and dead-lettered) downstream
        aid = None
    return shard_of(aid if isinstance(aid, str) else "", shards)
