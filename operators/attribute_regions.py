"""The region step of the attribute alerts: peers, importance, alert lifecycle, regional incidents.

See :mod:`operators.attribute_alerts` for the rules; this module holds the per-region state.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import TYPE_CHECKING, Any

from boucle.config.settings import SEVERITY_RANK
from boucle.config.times import DAY_MS, HOUR_MS
from boucle.detectors import KeyDriverImportance, PeerGroup
from boucle.operators.alerts import alert_id
from boucle.operators.attribute_sites import SeriesStatus, SiteSummary

if TYPE_CHECKING:
    from boucle.operators.attribute_alerts import AttributeAlertEngine

__all__ = ["DAY_MS", "HOUR_MS", "ImportanceSnapshot", "OpenAlert", "RegionState"]



@dataclass(frozen=True, slots=True)
class ImportanceSnapshot:
    """A region's key-driver weights as of the end of one event-time day (``day_ms`` = its start)."""

    region: str
    day_ms: int
    t_ms: int
    target: str
    weights: dict[str, float]
    correlations: dict[str, float]
    n: float


@dataclass(slots=True)
class OpenAlert:
    id: str
    severity: str
    opened_ms: int
    normal_since: int | None = None
    sites: tuple[str, ...] = ()


class RegionState:
    """Peer groups, importance, open alerts and regional incidents of one region."""

    def __init__(self, engine: "AttributeAlertEngine") -> None:
        cfg = engine.cfg
        self.region = ""
        self.groups: dict[str, PeerGroup] = {}
        self.importance = KeyDriverImportance(half_life_days=cfg.importance_half_life.total_seconds() / 86400,
                                              names=engine.attribute_names)
        self.z: dict[str, dict[str, float]] = {}  # attribute -> site -> latest expectation z
        self.local: dict[str, dict[str, bool]] = {}  # attribute -> site -> local trigger
        self.open: dict[tuple[str, str], OpenAlert] = {}
        self.regional: dict[str, OpenAlert] = {}
        self.pending: dict[tuple[str, str], int] = {}  # (site, attribute) -> first firing while the region stirs
        self.importance_day: int | None = None  # start (ms) of the event-time day the importance describes
        self.importance_t: int = 0

    def importance_snapshot(self, engine: "AttributeAlertEngine") -> ImportanceSnapshot | None:
        """The region's importance as it stands, for the day it describes (None before any response)."""
        if self.importance_day is None:
            return None
        evidence = self.importance.evidence()
        names = engine.attribute_names
        return ImportanceSnapshot(
            self.region, self.importance_day, self.importance_t, engine.cfg.importance_target,
            {name: float(evidence.get(name, 0.0)) for name in names},
            {name: float(evidence.get(f"r_{name}", 0.0)) for name in names},
            float(evidence.get("n", 0.0)),
        )

    def roll_importance(self, engine: "AttributeAlertEngine", summary: "SiteSummary") -> ImportanceSnapshot | None:
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

    def add(self, engine: "AttributeAlertEngine", summary: SiteSummary, detected_ms: int) -> list[dict[str, Any]]:
        cfg = engine.cfg
        self.region = summary.region
        site = summary.site_id
        self.importance.learn_many(summary.responses, summary.t_ms)
        weights: dict[str, float] | None = None  # a ridge fit: computed only if an alert may be built
        k = 1
        out: list[dict[str, Any]] = []
        for attr, st in summary.series.items():
            group = self.groups.get(attr)
            if group is None:
                group = self.groups[attr] = PeerGroup(min_peers=cfg.peer_min_sites, min_n=engine.peer_min_n)
            group.update(site, st.mean, st.n, st.sd)
            has_history = st.evidence["n_history"] >= engine.min_history
            self.z.setdefault(attr, {})[site] = st.evidence["z"] if has_history else 0.0
            self.local.setdefault(attr, {})[site] = bool(st.triggers)

            evidence = dict(st.evidence)
            triggers = list(st.triggers)
            comparison = group.compare(site, st.mean, st.n, st.sd) if st.n >= engine.peer_min_n else None
            if comparison is not None:
                evidence.update({"peer_median": comparison["peer_median"], "peer_spread": comparison["peer_spread"],
                                 "n_peers": comparison["n_peers"], "gap": comparison["gap"],
                                 "peer_z": comparison["z"]})
                if comparison["z"] <= -engine.peer_z and comparison["gap"] <= -engine.peer_gap:
                    triggers.append("peer")
            out.extend(self._regional(engine, attr, st, detected_ms))
            held = attr in self.regional or self._region_moving(engine, attr, site)
            fires = bool(set(triggers) & set(cfg.alone)) or len(triggers) >= cfg.min_triggers
            key = (site, attr)
            current = self.open.get(key)
            if fires or current is not None:
                if weights is None:
                    weights = self.importance.weights()
                    k = max(len(weights), 1)
                importance = weights.get(attr, 1.0 / k)
                evidence["importance"] = importance
            if fires and not held and current is None and engine.hold_ms > 0 and self._region_stirring(
                    engine, attr, site):
                # Other sites of the region drop on this attribute too: wait, so a regional incident can claim it.
                since = self.pending.setdefault(key, st.alarm_ms if st.alarm_ms is not None else st.t_ms)
                held = st.t_ms - since < engine.hold_ms
            if not fires or attr in self.regional:
                self.pending.pop(key, None)
            if fires and not held:
                self.pending.pop(key, None)
                severity = engine.severity(evidence, importance * k)
                event_ms = st.alarm_ms if st.alarm_ms is not None else st.t_ms
                if current is None:
                    opened = event_ms - event_ms % HOUR_MS
                    current = self.open[key] = OpenAlert(alert_id("attribute", site, attr, str(opened)),
                                                         severity, opened)
                    out.append(engine.site_alert(current, "open", site, attr, triggers, evidence, event_ms,
                                                 detected_ms))
                elif SEVERITY_RANK[severity] > SEVERITY_RANK[current.severity]:
                    current.severity = severity
                    out.append(engine.site_alert(current, "updated", site, attr, triggers, evidence, event_ms,
                                                 detected_ms))
                current.normal_since = None
            elif current is not None:
                if not triggers and evidence["z"] > -cfg.resolve_z:
                    if current.normal_since is None:
                        current.normal_since = st.t_ms
                    elif st.t_ms - current.normal_since >= engine.resolve_after_ms:
                        del self.open[key]
                        out.append(engine.site_alert(current, "resolved", site, attr, triggers, evidence, st.t_ms,
                                                     detected_ms))
                else:
                    current.normal_since = None
        return out

    def _region_stirring(self, engine: "AttributeAlertEngine", attr: str, site: str) -> bool:
        """Another site of the region has a local trigger on this attribute, or ``regional_min_sites - 1``
        others are below expectation (``z <= -regional_z``)."""
        cfg = engine.cfg
        zs, local = self.z.get(attr, {}), self.local.get(attr, {})
        if any(on for s, on in local.items() if s != site):
            return True
        down = sum(1 for s, z in zs.items() if s != site and z <= -cfg.regional_z)
        return down >= max(cfg.regional_min_sites - 1, 1)

    def _region_moving(self, engine: "AttributeAlertEngine", attr: str, site: str) -> bool:
        """Most other sites of the region are below expectation on this attribute too."""
        others = [z for s, z in self.z.get(attr, {}).items() if s != site]
        cfg = engine.cfg
        return len(others) >= cfg.regional_min_sites - 1 and median(others) <= -cfg.regional_z / 2

    def _regional(self, engine: "AttributeAlertEngine", attr: str, st: SeriesStatus, detected_ms: int):
        cfg = engine.cfg
        zs, local = self.z.get(attr, {}), self.local.get(attr, {})
        down = sorted(s for s, z in zs.items() if z <= -cfg.regional_z or local.get(s))
        n_sites = len(zs)
        is_regional = len(down) >= cfg.regional_min_sites and len(down) >= cfg.regional_share * n_sites
        current = self.regional.get(attr)
        if is_regional:
            if current is None:
                opened = st.t_ms - st.t_ms % HOUR_MS
                current = self.regional[attr] = OpenAlert(
                    alert_id("regional_incident", self.region, attr, str(opened)), "high", opened, sites=tuple(down))
                return [engine.regional_alert(current, "open", self.region, attr, down, n_sites, zs, st.t_ms,
                                              detected_ms)]
            current.normal_since = None
            if len(down) > len(current.sites):
                current.sites = tuple(down)
            return []
        if current is not None:
            if not down:
                if current.normal_since is None:
                    current.normal_since = st.t_ms
                elif st.t_ms - current.normal_since >= engine.resolve_after_ms:
                    del self.regional[attr]
                    return [engine.regional_alert(current, "resolved", self.region, attr, down, n_sites, zs,
                                                  st.t_ms, detected_ms)]
            else:
                current.normal_since = None
        return []
