"""Attribute alerts (the outer loop): trend, peer comparison and expectation, ranked by importance.

```
by site ─ sites (stateful, per site: one AttributeWatch per attribute, updated per response)
            └─ SiteSummary per batch ─ key by region ─ regions (stateful, per region) ─ alerts
```
The site step updates every (site, attribute) detector with each response, so the evidence is
judged on the response that makes it sufficient, not when a window closes; it sends its region a
summary of the attributes that moved (recent mean/n/sd for peers, local triggers, evidence) and
the responses' ratings for the key-driver analysis. The region step owns what needs several
sites: the peer groups, the importance of each attribute, the alert lifecycle, and the regional
incident — when most sites of a region drop on one attribute together it opens *one*
``regional_incident`` and holds the site alerts for that attribute (a region-wide drop is not a
peer problem of every site). While a few other sites of the region are already down on the
attribute, a new site alert waits ``regional_hold`` of event time first, so that the regional
incident, which needs a few sites, can claim the first ones too.

Lifecycle per (site, attribute): ``open`` once; ``updated`` (same id) when the severity grows;
``resolved`` once the attribute has had no trigger and ``z > -resolve_z`` for ``resolve_after``
of event time. Ids are deterministic: ``alert_id("attribute", site, attribute, opening hour)``.

Severity = effect (rating points) x importance (relative to an average attribute) x confidence.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Callable, Iterable

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from detectors import AttributeWatch, KeyDriverImportance, PeerGroup
from flows.settings import SEVERITY_RANK, Settings
from operators.alerts import alert_id, new_alert, now_ms
from operators.decode import Feedback

__all__ = [
    "AttributeAlertEngine", "AttributeAlertsOut", "ImportanceSnapshot", "RegionState", "SiteState", "SiteSummary",
    "attribute_alerts",
]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Fixed UTC offsets by country for local hour/day of week (daylight saving ignored).
UTC_OFFSET_HOURS = {"FR": 1, "BE": 1, "NL": 1, "DE": 1, "ES": 1, "IT": 1, "LU": 1, "CH": 1, "GB": 0, "IE": 0,
                    "PT": 0}
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(slots=True)
class SeriesStatus:
    """One attribute of one site after a batch: local verdict and the numbers behind it."""

    mean: float  # recent mean (peer window)
    n: float  # its effective n
    sd: float
    triggers: list[str]  # local: trend, expectation
    evidence: dict[str, float]
    alarm_ms: int | None  # event time of the response that first raised a local trigger in the batch
    t_ms: int


@dataclass(slots=True)
class SiteSummary:
    site_id: str
    region: str
    t_ms: int
    series: dict[str, SeriesStatus]
    responses: list[tuple[dict[str, int], float]] = field(default_factory=list)  # (attributes, target)


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


class SiteState:
    """The detectors of one site: an :class:`AttributeWatch` per attribute."""

    def __init__(self, engine: "AttributeAlertEngine") -> None:
        self.watches: dict[str, AttributeWatch] = {}
        self.site_id = ""

    def add(self, engine: "AttributeAlertEngine", events: list[Feedback]) -> SiteSummary | None:
        if not events:
            return None
        site_id = self.site_id = events[0].site_id
        watches = self.watches
        # The series are independent: feed each its ratings of the batch in order, in one go.
        points: dict[str, tuple[list[int], list[int]]] = {}  # attribute -> (ratings, ms) in arrival order
        responses = []
        target = engine.cfg.importance_target
        for event in events:
            t = event.ts_ms
            attributes = event.attributes
            for name, value in attributes.items():
                series = points.get(name)
                if series is None:
                    points[name] = ([value], [t])
                else:
                    series[0].append(value)
                    series[1].append(t)
            y = event.scores.get(target)
            if y is not None and attributes:
                responses.append((dict(attributes), float(y)))
        series = {}
        for name, (values, times) in points.items():
            watch = watches.get(name)
            if watch is None:
                watch = watches[name] = engine.new_watch(site_id)
            # A live source hands over one rating per series at a time: then that rating is the one
            # that raised any alarm, and no copy is needed.
            before = watch.copy() if len(values) > 1 else None
            watch.update_many(values, times)
            mean, n, sd = watch.peer.summary()
            triggers = [t for t in watch.triggers() if t != "peer"]
            # Only a series in alarm after the batch needs the response that first raised it: replay the
            # batch on the copy, checking after every response (the rare case; the answer is the same).
            if not triggers:
                first = None
            elif before is None:
                first = times[0]
            else:
                first = _first_alarm(before, values, times)
            latest = max(times)
            series[name] = SeriesStatus(mean, n, sd, triggers, watch.evidence(), first, latest)
        return SiteSummary(site_id, engine.region_of.get(site_id, ""), max(s.t_ms for s in series.values())
                           if series else events[-1].ts_ms, series, responses)


def _first_alarm(watch: AttributeWatch, values: list[int], times: list[int]) -> int | None:
    """Event time of the first rating of ``values`` after which ``watch`` has a local trigger."""
    for value, t in zip(values, times):
        watch.update(value, t)
        if watch.local_alarm:
            return t
    return None


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
        self.region = region = summary.region
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


_WORDS = {
    "fr": {"at": "à", "recent": "récemment", "expected": "attendu", "peers": "médiane des pairs",
           "slope": "tendance", "per_day": "/jour", "open": "baisse", "updated": "aggravation",
           "resolved": "retour à la normale", "region": "Baisse régionale", "sites": "sites touchés sur"},
    "en": {"at": "at", "recent": "recently", "expected": "expected", "peers": "peer median",
           "slope": "trend", "per_day": "/day", "open": "drop", "updated": "worsening",
           "resolved": "back to normal", "region": "Regional drop", "sites": "sites affected out of"},
}


def _num(value: float, language: str, digits: int = 1) -> str:
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if language == "fr" else text


class AttributeAlertEngine:
    """Everything the two steps share: settings, detector parameters, alert building."""

    def __init__(self, settings: Settings) -> None:
        cfg = self.cfg = settings.attribute_alerts
        self.sites = settings.site_map()
        self.region_of = {s.id: s.region for s in settings.sites}
        self.attribute_names = [a.name for a in settings.attributes]
        self.labels = {a.name: {"fr": a.label_fr or a.name, "en": a.label_en or a.name} for a in settings.attributes}
        self.region_language = {}
        for region in {s.region for s in settings.sites}:
            langs = [s.language for s in settings.sites if s.region == region]
            self.region_language[region] = max(set(langs), key=langs.count)
        self.region_names = {r.id: r.name or r.id for r in settings.regions}
        probe = AttributeWatch(dict(cfg.trend), dict(cfg.expectation), dict(cfg.peer), dict(cfg.decline))
        self.min_history = probe.expectation.min_history
        self.peer_min_n = probe.peer.min_n
        self.peer_z = probe.peer.z_threshold
        self.peer_gap = probe.peer.min_gap
        self.z_threshold = probe.expectation.z_threshold
        self.resolve_after_ms = int(cfg.resolve_after.total_seconds() * 1000)
        self.hold_ms = int(cfg.regional_hold.total_seconds() * 1000)

    def new_watch(self, site_id: str) -> AttributeWatch:
        site = self.sites.get(site_id)
        offset = UTC_OFFSET_HOURS.get(site.country.upper(), 0) if site else 0
        expectation = {"utc_offset_hours": offset, **self.cfg.expectation}
        decline = {"utc_offset_hours": offset, **self.cfg.decline}
        return AttributeWatch(dict(self.cfg.trend), expectation, dict(self.cfg.peer), decline)

    def severity(self, evidence: dict[str, float], relative_importance: float) -> str:
        effect = max(evidence.get("baseline", 0) - evidence.get("level", 0), evidence.get("drop", 0.0),
                     -evidence.get("gap", 0.0), 0.0)
        confidence = min(1.0, max(-evidence.get("z", 0.0), -evidence.get("peer_z", 0.0),
                                  self.z_threshold * evidence.get("cusum", 0.0) / max(evidence.get("cusum_threshold", 1), 1e-9))
                         / (1.5 * self.z_threshold))
        score = effect * math.sqrt(min(max(relative_importance, 0.25), 4.0)) * confidence
        rank = sum(score >= level for level in self.cfg.severity_levels)
        evidence["severity_score"] = score
        return SEVERITIES[rank]

    def site_alert(self, alert: OpenAlert, status: str, site_id: str, attr: str, triggers: list[str],
                   evidence: dict[str, float], event_ms: int, detected_ms: int) -> dict[str, Any]:
        site = self.sites.get(site_id)
        language = site.language if site else "en"
        w = _WORDS[language]
        label = self.labels.get(attr, {}).get(language, attr)
        name = (site.name or site.id) if site else site_id
        text = (f"{label} {w['at']} {name} : " if language == "fr" else f"{label} {w['at']} {name}: ")
        text += (f"{w[status]}, {_num(evidence['level'], language)}/5 {w['recent']} "
                 f"({w['expected']} {_num(evidence['baseline'], language)}, n={evidence['n']:.0f}, "
                 f"z={_num(evidence['z'], language)}")
        if "peer_median" in evidence:
            text += f", {w['peers']} {_num(evidence['peer_median'], language)}"
        text += f", {w['slope']} {_num(evidence['slope'], language, 2)}{w['per_day']})."
        return new_alert(
            id=alert.id, kind="attribute", severity=alert.severity, site_id=site_id,
            region=self.region_of.get(site_id, ""), triggers=triggers,
            evidence={k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                      for k, v in evidence.items()},
            message=text, event_ms=event_ms, owner=site.owner if site else "", team=site.team if site else "",
            attribute=attr, status=status, detected_ms=detected_ms,
        )

    def regional_alert(self, alert: OpenAlert, status: str, region: str, attr: str, down: list[str],
                       n_sites: int, zs: dict[str, float], event_ms: int, detected_ms: int) -> dict[str, Any]:
        language = self.region_language.get(region, "en")
        w = _WORDS[language]
        label = self.labels.get(attr, {}).get(language, attr)
        z_values = [zs[s] for s in down] or [0.0]
        text = (f"{w['region']} — {label}, {self.region_names.get(region, region)}: {len(down)} {w['sites']} "
                f"{n_sites} (z {_num(median(z_values), language)})" + (f", {w['resolved']}" if status == "resolved"
                                                                      else "") + ".")
        return new_alert(
            id=alert.id, kind="regional_incident", severity=alert.severity, site_id="", region=region,
            triggers=["expectation", "trend"], attribute=attr, status=status,
            evidence={"sites_down": down, "n_sites": n_sites, "median_z": round(median(z_values), 4)},
            message=text, event_ms=event_ms, detected_ms=detected_ms,
        )

    # -- in-process replay: the same two steps without bytewax (tests, benchmarks) ------------------
    def replay(self, batches: Iterable[list[Feedback]], detected_ms: Callable[[], int] | None = None
               ) -> list[dict[str, Any]]:
        sites: dict[str, SiteState] = {}
        regions: dict[str, RegionState] = {}
        alerts: list[dict[str, Any]] = []
        for batch in batches:
            groups: dict[str, list[Feedback]] = {}
            for event in batch:
                groups.setdefault(event.site_id, []).append(event)
            for site_id, events in groups.items():
                state = sites.get(site_id) or sites.setdefault(site_id, SiteState(self))
                summary = state.add(self, events)
                if summary is None:
                    continue
                region = regions.get(summary.region) or regions.setdefault(summary.region, RegionState(self))
                detected = detected_ms() if detected_ms else summary.t_ms
                alerts.extend(region.add(self, summary, detected))
        return alerts


class _SiteLogic(StatefulBatchLogic):
    def __init__(self, engine: AttributeAlertEngine, snapshot: bytes | None) -> None:
        self.engine = engine
        self.state = pickle.loads(snapshot) if snapshot is not None else SiteState(engine)

    def on_batch(self, values: list[list[Feedback]]):
        out = []
        for events in values:
            summary = self.state.add(self.engine, events)
            if summary is not None:
                out.append(summary)
        return out, StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.state)


class _RegionLogic(StatefulBatchLogic):
    def __init__(self, engine: AttributeAlertEngine, snapshot: bytes | None, now: Callable[[], int]) -> None:
        self.engine = engine
        self.now = now
        self.state = pickle.loads(snapshot) if snapshot is not None else RegionState(engine)

    def on_batch(self, values: list[SiteSummary]):
        detected = self.now()
        out: list[Any] = []
        for summary in values:
            ended = self.state.roll_importance(self.engine, summary)
            if ended is not None:
                out.append(ended)
            out.extend(self.state.add(self.engine, summary, detected))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self):
        # The day in progress, as far as it went; a resumed run re-emits it later, more complete.
        snapshot = self.state.importance_snapshot(self.engine)
        return ([snapshot] if snapshot is not None else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.state)


@dataclass(frozen=True)
class AttributeAlertsOut:
    alerts: Stream[dict[str, Any]]
    importance: Stream[ImportanceSnapshot]


@operator
def attribute_alerts(
    step_id: str,
    up: KeyedStream[list[Feedback]],
    engine: AttributeAlertEngine,
    now: Callable[[], int] = now_ms,
) -> AttributeAlertsOut:
    """Attribute and regional-incident alerts, and each region's daily attribute importance, from
    batches of one site's events keyed by ``site_id``."""
    summaries = op.stateful_batch("sites", up, lambda snapshot: _SiteLogic(engine, snapshot))
    by_region = op.key_on("by_region", op.map("summary", summaries, lambda kv: kv[1]), lambda s: s.region)
    out = op.stateful_batch("regions", by_region, lambda snapshot: _RegionLogic(engine, snapshot, now))
    split = op.branch("split", op.map("values", out, lambda kv: kv[1]), lambda item: isinstance(item, dict))
    return AttributeAlertsOut(split.trues, split.falses)
