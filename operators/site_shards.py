"""Per-site state keyed by shard of sites: a batch costs a bounded number of keyed items.

bytewax pays a cost per keyed item. Keyed by site, a thin network (thousands of sites, each with a
few responses a week) turns a batch of messages into about one item per event. The per-site steps
(windows, hot alerts, comment themes) are therefore keyed by the site's *shard* (crc32 of its id
modulo ``shards``): :class:`SiteShards` turns a decoded batch into at most ``shards`` items, each
``(shard, [(site_id, [events in arrival order]), ...])``, and :func:`sharded_stateful_batch` runs,
under each shard key, one per-site logic for every site of the shard: the logic a per-site key
would have had. Each site's events stay in order and its state stays its own, so the results are
those of a per-site key whatever the shard count.

>>> from boucle.operators.decode import DecodedBatch, Feedback
>>> event = lambda site: Feedback("e", 0, site, "", "", {}, {}, "", "", {}, 0, "")
>>> items = SiteShards(2)(DecodedBatch([event("s1"), event("s4"), event("s3"), event("s1")], [], 0))
>>> [(shard, [(site, len(events)) for site, events in pairs]) for shard, pairs in items]
[('sites-0', [('s1', 2), ('s3', 1)]), ('sites-1', [('s4', 1)])]
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import bytewax.operators as op
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.operators.decode import DecodedBatch, group_by_site

__all__ = ["ShardLogic", "SiteShards", "shard_of_site", "sharded_stateful_batch", "site_values"]

SitePairs = list  # [(site_id, value), ...]: a shard item's value
_TAG = "site_shards"  # marks a shard's snapshot, so that a per-site one (an older store) is refused


def shard_of_site(site_id: str, shards: int) -> str:
    """The state key of ``site_id``'s per-site steps: stable across runs and processes.

    >>> shard_of_site("store-0042", 64) == shard_of_site("store-0042", 64), shard_of_site("store-0042", 1)
    (True, 'sites-0')
    """
    return f"sites-{zlib.crc32(site_id.encode()) % shards}"


class SiteShards:
    """``flat_map`` a :class:`DecodedBatch` into one item per shard present: each site's events in
    arrival order, the sites in order of first arrival."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self._key: dict[str, str] = {}  # site -> shard; sites are the registry's (others are dead letters)

    def __call__(self, batch: DecodedBatch) -> list[tuple[str, SitePairs]]:
        items: dict[str, SitePairs] = {}
        keys = self._key
        for site, events in group_by_site(batch):
            shard = keys.get(site)
            if shard is None:
                shard = keys[site] = shard_of_site(site, self.shards)
            pairs = items.get(shard)
            if pairs is None:
                items[shard] = [(site, events)]
            else:
                pairs.append((site, events))
        return list(items.items())


def site_values(items: list[tuple[str, SitePairs]]) -> list[Any]:
    """``flat_map_batch`` shard items into their values, for a step keyed by nothing."""
    return [value for _, pairs in items for _, value in pairs]


class ShardLogic(StatefulBatchLogic):
    """The per-site logics of one shard, each called as bytewax would call it under its own key.

    ``build(site_id, snapshot or None)`` makes a site's logic. A bytewax call on the shard becomes a
    call on each site concerned (``on_batch``: the sites of the values, with their values in order;
    ``on_notify``: the sites whose time has come; ``on_eof``: all). ``notify_at`` is the earliest of
    the sites' (``notifies=False``: the logics never ask, so they are not asked); the snapshot holds
    each site's, re-taken only for the sites called since the last one (bytewax asks a logic for its
    notify time and snapshot only after calling it, so the others are as they were).
    """

    def __init__(self, build: Callable[[str, Any], StatefulBatchLogic], shards: int, snapshot: tuple | None = None,
                 notifies: bool = True):
        self.build, self.shards, self.notifies = build, shards, notifies
        self.sites: dict[str, StatefulBatchLogic] = {}
        self._snapshots: dict[str, Any] = {}  # each site's latest snapshot
        self._called: set[str] = set()  # sites whose snapshot is out of date
        self._due: dict[str, datetime] = {}  # each site's notify_at, when it has one
        for site, state in _site_snapshots(snapshot, shards).items():
            self.sites[site] = build(site, state)
            self._called.add(site)
            self._after(site, False)

    def on_batch(self, values: list[SitePairs]):
        grouped: dict[str, list] = {}
        for pairs in values:
            for site, value in pairs:
                queued = grouped.get(site)
                if queued is None:
                    grouped[site] = [value]
                else:
                    queued.append(value)
        self._called.update(grouped)
        # The hot path (a call per site and batch): locals, and bookkeeping only where needed.
        out: SitePairs = []
        sites, build, notifies = self.sites, self.build, self.notifies
        for site, queued in grouped.items():
            logic = sites.get(site)
            if logic is None:
                logic = sites[site] = build(site, None)
            emitted, discard = logic.on_batch(queued)
            for value in emitted:
                out.append((site, value))
            if discard or notifies:
                self._after(site, discard)
        return self._result(out)

    def on_notify(self):
        now = datetime.now(timezone.utc)
        return self._call([site for site, at in self._due.items() if at <= now], "on_notify")

    def on_eof(self):
        return self._call(list(self.sites), "on_eof")

    def notify_at(self) -> datetime | None:
        return min(self._due.values(), default=None)

    def snapshot(self) -> tuple:
        for site in self._called:
            self._snapshots[site] = self.sites[site].snapshot()
        self._called.clear()
        return _TAG, self.shards, dict(self._snapshots)

    def _call(self, sites: list[str], method: str):
        out: SitePairs = []
        for site in sites:
            emitted, discard = getattr(self.sites[site], method)()
            out += [(site, value) for value in emitted]
            self._called.add(site)
            self._after(site, discard)
        return self._result(out)

    def _after(self, site: str, discard: bool) -> None:
        """After a call on ``site``'s logic: forget it when it asks to be discarded, else its notify time."""
        if discard:
            del self.sites[site]
            self._snapshots.pop(site, None)
            self._called.discard(site)
            self._due.pop(site, None)
            return
        at = self.sites[site].notify_at() if self.notifies else None
        if at is None:
            self._due.pop(site, None)
        else:
            self._due[site] = at

    def _result(self, out: SitePairs):
        return ([out] if out else []), (StatefulBatchLogic.RETAIN if self.sites else StatefulBatchLogic.DISCARD)


def _site_snapshots(snapshot: tuple | None, shards: int) -> dict[str, Any]:
    if snapshot is None:
        return {}
    if not (type(snapshot) is tuple and len(snapshot) == 3 and snapshot[0] == _TAG):
        raise ValueError("this recovery directory holds per-site state written before the site shards"
                         " (state.site_shards): start the run with a fresh --recovery-dir")
    if snapshot[1] != shards:
        raise ValueError(f"this recovery directory was written with state.site_shards = {snapshot[1]}, not {shards}:"
                         " set it back, or start the run with a fresh --recovery-dir")
    return snapshot[2]


def sharded_stateful_batch(
    step_id: str, up: KeyedStream[SitePairs], shards: int, build: Callable[[str, Any], StatefulBatchLogic],
    notifies: bool = True,
) -> KeyedStream[SitePairs]:
    """``op.stateful_batch`` over shard items (from :class:`SiteShards`, ``shards`` of them) with one
    ``build(site_id, snapshot)`` logic per site; emits ``(shard, [(site_id, value), ...])``, one item
    per shard and call. ``notifies=False``: the logics never return a ``notify_at``."""
    return op.stateful_batch(step_id, up, lambda snapshot: ShardLogic(build, shards, snapshot, notifies))
