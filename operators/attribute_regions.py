"""The region step of the attribute alerts: peers, importance, alert lifecycle, regional incidents.

A region owns what needs several sites. It compares each site's recent level with its peers (the
other sites of the region, :class:`~detectors.PeerGroup` per attribute), learns the importance of
each attribute (:class:`~detectors.KeyDriverImportance`, shrunk towards the network's pooled
statistic when the flow feeds one with :meth:`RegionState.learn_network`, also published per
event-time day as an :class:`ImportanceSnapshot`, "not enough data" included), and decides: a site alert fires when one of ``alone`` is among its
triggers or ``min_triggers`` hold together; its open / updated / resolved follow
:mod:`operators.attribute_lifecycle`.

When most sites of a region drop on one attribute together, or when the region's pooled responses
to it drop (:mod:`operators.attribute_pooled`, the regional incident of a thin network) with a few
sites that moved, it opens *one* ``regional_incident``
and holds the site alerts for that attribute (a region-wide drop is not a peer problem of every
site). While a few other sites of the region are already down on the attribute, a new site alert
waits ``regional_hold`` of event time first, so that the regional incident, which needs a few
sites, can claim the first ones too.

A region's state snapshots as plain data (:meth:`RegionState.snapshot`) and is rebuilt from the
engine of the run (current importance half-life, peer thresholds) and that snapshot
(:meth:`RegionState.from_snapshot`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from boucle.config.times import DAY_MS
from boucle.detectors import KeyDriverImportance, PeerGroup
from boucle.detectors.importance import NOT_ENOUGH_DATA
from boucle.detectors.peer import peer_alarm, peer_evidence
from boucle.operators.attribute_board import AttributeBoard
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_lifecycle import Lifecycle, OpenAlert
from boucle.operators.attribute_pooled import PooledSeries
from boucle.operators.attribute_sites import SeriesStatus, SiteSummary

__all__ = ["ImportanceSnapshot", "OpenAlert", "RegionState"]


@dataclass(frozen=True, slots=True)
class ImportanceSnapshot:
    """A region's key-driver weights as of the end of one event-time day (``day_ms`` = its start):
    ``status`` is ``learnt``, ``network`` (the network's evidence carries it) or ``not_enough_data``
    (then every weight is 0: none is known); ``answered``: decayed responses behind each attribute."""

    region: str
    day_ms: int
    t_ms: int
    target: str
    weights: dict[str, float]
    correlations: dict[str, float]
    n: float
    status: str = "learnt"
    answered: dict[str, float] = field(default_factory=dict)


class RegionState:
    """Peer groups, importance, open alerts and regional incidents of one region."""

    def __init__(self, engine: AttributeAlertEngine) -> None:
        self.region = ""
        self.groups: dict[str, PeerGroup] = {}
        self.importance = KeyDriverImportance(**engine.importance_params)
        self.network = KeyDriverImportance(**engine.importance_params)  # the prior: the whole network's
        self.down_z = engine.cfg.regional_z
        self.boards: dict[str, AttributeBoard] = {}  # attribute -> each site's latest z and local trigger
        self.open = Lifecycle()  # site alerts by (site, attribute)
        self.regional = Lifecycle()  # regional incidents by attribute
        self.pending: dict[tuple[str, str], int] = {}  # (site, attribute) -> first firing while the region stirs
        self.importance_day: int | None = None  # start (ms) of the event-time day the importance describes
        self.importance_t: int = 0
        self.pooled: dict[str, PooledSeries] = {}  # question -> the region's pooled series

    def snapshot(self) -> dict[str, Any]:
        """The region's learnt state as dicts, lists, tuples, numbers and strings, no parameter: the
        importance's and each peer group's :meth:`state`, the latest z and local trigger per attribute
        and site, the open alerts and incidents (:meth:`Lifecycle.state`), the held site alerts as
        ``(site, attribute, since_ms)`` and the importance day."""
        return {
            "region": self.region,
            "importance": self.importance.state(),
            "network": self.network.state(),
            "groups": {attr: group.state() for attr, group in self.groups.items()},
            "z": {attr: dict(board.z) for attr, board in self.boards.items()},
            "local": {attr: dict(board.local) for attr, board in self.boards.items()},
            "open": self.open.state(),
            "regional": self.regional.state(),
            "pending": [(site, attr, since) for (site, attr), since in self.pending.items()],
            "importance_day": self.importance_day,
            "importance_t": self.importance_t,
            "pooled": {attr: pooled.state() for attr, pooled in (self.pooled or {}).items()},
        }

    @classmethod
    def from_snapshot(cls, engine: AttributeAlertEngine, snapshot: dict[str, Any]) -> RegionState:
        """The state of :meth:`snapshot`, its detectors built with ``engine``'s (current) parameters."""
        new = cls(engine)
        new.region = snapshot["region"]
        new.importance = KeyDriverImportance.from_state(snapshot["importance"], **engine.importance_params)
        if "network" in snapshot:  # (snapshots from before the network prior have none)
            new.network = KeyDriverImportance.from_state(snapshot["network"], **engine.importance_params)
        new.groups = {attr: PeerGroup.from_state(state, **engine.group_params)
                      for attr, state in snapshot["groups"].items()}
        local = snapshot["local"]
        new.boards = {attr: AttributeBoard(new.down_z, zs, local.get(attr, {})) for attr, zs in snapshot["z"].items()}
        new.open = Lifecycle.from_state(snapshot["open"])
        new.regional = Lifecycle.from_state(snapshot["regional"])
        new.pending = {(site, attr): since for site, attr, since in snapshot["pending"]}
        new.importance_day, new.importance_t = snapshot["importance_day"], snapshot["importance_t"]
        new.pooled = {attr: PooledSeries.from_state(engine, attr, state, engine.cfg.regional_move)
                      for attr, state in snapshot.get("pooled", {}).items()}
        return new

    def __setstate__(self, state: dict[str, Any]) -> None:
        # States pickled whole (recovery snapshots before snapshot()) taken before the lifecycle had its
        # own class hold plain dicts of open alerts.
        for name in ("open", "regional"):
            if isinstance(state.get(name), dict):
                lifecycle = Lifecycle()
                lifecycle.alerts = state[name]
                state[name] = lifecycle
        state.setdefault("network", KeyDriverImportance(half_life_days=state["importance"].half_life_days))
        if "z" in state:  # ... and, before the boards, each site's marks in two dicts (only the marks
            # matter: such a state is read for its snapshot(), rebuilt with the run's threshold)
            zs, local = state.pop("z"), state.pop("local")
            state["boards"] = {attr: AttributeBoard(0.0, z, local.get(attr, {})) for attr, z in zs.items()}
        self.__dict__.update(state)

    def learn_network(self, delta: KeyDriverImportance) -> None:
        """Pool the network's responses of a slot (every region's) into the prior."""
        self.network.add(delta)

    def prior(self) -> KeyDriverImportance | None:
        """The network's statistic, once it has seen a response (None: the region stands alone)."""
        network = getattr(self, "network", None)
        return network if network is not None and network.n > 0 else None

    def importance_snapshot(self, engine: AttributeAlertEngine) -> ImportanceSnapshot | None:
        """The region's importance as it stands, for the day it describes (None before any response)."""
        if self.importance_day is None:
            return None
        estimate = self.importance.estimate(self.prior())
        names = engine.attribute_names
        return ImportanceSnapshot(
            self.region, self.importance_day, self.importance_t, engine.cfg.importance_target,
            {name: float(estimate.weights.get(name, 0.0)) for name in names},
            {name: float(estimate.correlations.get(name, 0.0)) for name in names},
            float(estimate.n), estimate.status,
            {name: float(estimate.answered.get(name, 0.0)) for name in names},
        )

    def roll_importance(self, engine: AttributeAlertEngine, summary: SiteSummary) -> ImportanceSnapshot | None:
        """When the region's event time enters a new day, the importance of the day that ended."""
        self.region = summary.region
        day = summary.t_ms - summary.t_ms % DAY_MS
        ended = None
        if self.importance_day is not None and day > self.importance_day:
            ended = self.importance_snapshot(engine)
        if self.importance_day is None or day > self.importance_day:
            self.importance_day = day
        self.importance_t = max(self.importance_t, summary.t_ms)
        return ended

    def add(self, engine: AttributeAlertEngine, summary: SiteSummary, detected_ms: int) -> list[dict[str, Any]]:
        """Take one site's summary: the alerts (site and regional) it opens, updates or resolves."""
        cfg = engine.cfg
        self.region = summary.region
        site = summary.site_id
        self.importance.learn_many(summary.responses, summary.t_ms)
        weights: dict[str, float] | None = None  # a ridge fit: computed only if an alert may be built
        status = NOT_ENOUGH_DATA
        k = 1
        out: list[dict[str, Any]] = []
        for attr, st in summary.series.items():
            group = self.groups.get(attr)
            if group is None:
                group = self.groups[attr] = PeerGroup(**engine.group_params)
            group.update(site, st.mean, st.n, st.sd)
            has_history = st.evidence["n_history"] >= engine.min_history
            board = self.boards.get(attr)
            if board is None:
                board = self.boards[attr] = AttributeBoard(self.down_z)
            board.mark(site, st.evidence["z"] if has_history else 0.0, bool(st.triggers))
            if cfg.regional_pooled and attr in summary.points:
                pooled = self.pooled.get(attr)
                if pooled is None:
                    pooled = self.pooled[attr] = PooledSeries(engine, attr, cfg.regional_move)
                pooled.add(site, summary.points[attr][0], st.t_ms)

            evidence = dict(st.evidence)
            triggers = list(st.triggers)
            comparison = group.compare(site, st.mean, st.n, st.sd) if st.n >= engine.peer_min_n else None
            if comparison is not None:
                evidence.update(peer_evidence(comparison))
                if peer_alarm(comparison, engine.peer_z, engine.peer_gap):
                    triggers.append("peer")
            out.extend(self._regional(engine, attr, board, st, detected_ms))
            held = attr in self.regional or board.moving(site, cfg.regional_min_sites - 1)
            fires = bool(set(triggers) & set(cfg.alone)) or len(triggers) >= cfg.min_triggers
            key = (site, attr)
            current = self.open.get(key)
            if fires or current is not None:
                if weights is None:
                    estimate = self.importance.estimate(self.prior())
                    weights, status = estimate.weights, estimate.status
                    k = max(len(self.importance.names), 1)
                # Not known: an average attribute's share for the severity, and the evidence says so.
                importance = weights.get(attr, 1.0 / k) if status != NOT_ENOUGH_DATA else 1.0 / k
                if status != NOT_ENOUGH_DATA:
                    evidence["importance"] = importance
                evidence["importance_status"] = status
            if fires and not held and current is None and engine.hold_ms > 0 and (
                    board.others_local(site) or board.others_down(site) >= max(cfg.regional_min_sites - 1, 1)):
                # Other sites of the region drop on this attribute too: wait, so a regional incident can claim it.
                since = self.pending.setdefault(key, st.alarm_ms if st.alarm_ms is not None else st.t_ms)
                held = st.t_ms - since < engine.hold_ms
            if not fires or attr in self.regional:
                self.pending.pop(key, None)
            if fires and not held:
                self.pending.pop(key, None)
                severity = engine.severity(evidence, importance * k)
                event_ms = st.alarm_ms if st.alarm_ms is not None else st.t_ms
                alert, status = self.open.fire(key, severity, event_ms, ("attribute", site, attr))
                if status is not None:
                    out.append(engine.site_alert(alert, status, site, attr, triggers, evidence, event_ms,
                                                 detected_ms))
            else:
                normal = not triggers and evidence["z"] > -cfg.resolve_z
                resolved = self.open.calm(key, normal, st.t_ms, engine.resolve_after_ms)
                if resolved is not None:
                    out.append(engine.site_alert(resolved, "resolved", site, attr, triggers, evidence, st.t_ms,
                                                 detected_ms))
        return out

    def _regional(self, engine: AttributeAlertEngine, attr: str, board: AttributeBoard, st: SeriesStatus,
                  detected_ms: int) -> list[dict[str, Any]]:
        """The regional incident on ``attr``: down = below expectation (``z <= -regional_z``) or with a
        local trigger; it holds while ``regional_min_sites`` and ``regional_share`` of the sites are down,
        and resolves once no site has been down for ``resolve_after``."""
        cfg = engine.cfg
        n_down, n_sites = board.n_down, len(board)
        is_regional = n_down >= cfg.regional_min_sites and n_down >= cfg.regional_share * n_sites
        down = None  # the sorted list, built only for an alert
        pooled = self.pooled.get(attr) if self.pooled else None
        if pooled is not None and pooled.alarm:
            moved = pooled.moved()
            # The pool dropped, and not because of one site nor of noise among many thin ones.
            if len(moved) >= cfg.regional_min_sites and len(moved) >= cfg.regional_pooled_share * pooled.active():
                is_regional = True
                down = sorted(set(board.down_sites()) | set(moved))
        if is_regional:
            alert, status = self.regional.fire(attr, "high", st.t_ms, ("regional_incident", self.region, attr))
            down = board.down_sites() if down is None else down
            if len(down) > len(alert.sites):
                alert.sites = tuple(down)
            return [engine.regional_alert(alert, status, self.region, attr, down, n_sites, board.z, st.t_ms,
                                          detected_ms)] if status is not None else []
        resolved = self.regional.calm(attr, not n_down, st.t_ms, engine.resolve_after_ms)
        if resolved is None:
            return []
        return [engine.regional_alert(resolved, "resolved", self.region, attr, board.down_sites(), n_sites, board.z,
                                      st.t_ms, detected_ms)]
