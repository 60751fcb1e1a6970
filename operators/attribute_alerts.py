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
from dataclasses import dataclass
from statistics import median
from typing import Any, Callable, Iterable

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import KeyedStream, StatefulBatchLogic

from boucle.config.settings import Settings
from boucle.config.times import now_ms
from boucle.detectors import AttributeWatch
from boucle.operators.alerts import new_alert
from boucle.operators.attribute_regions import (
    ImportanceSnapshot,
    OpenAlert,
    RegionState,
)
from boucle.operators.attribute_sites import SiteState, SiteSummary
from boucle.operators.decode import Feedback

__all__ = [
    "AttributeAlertEngine", "AttributeAlertsOut", "ImportanceSnapshot", "RegionState", "SiteState", "SiteSummary",
    "attribute_alerts",
]

# Fixed UTC offsets by country for local hour/day of week (daylight saving ignored).
UTC_OFFSET_HOURS = {"FR": 1, "BE": 1, "NL": 1, "DE": 1, "ES": 1, "IT": 1, "LU": 1, "CH": 1, "GB": 0, "IE": 0,
                    "PT": 0}
SEVERITIES = ("low", "medium", "high", "critical")


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
        self.spans = {a.name: max(a.max - a.min, 1) for a in settings.attributes}  # rating points of a scale
        # Every parameter, defaults included: the settings models mirror the detectors' constructors.
        self.trend_params = cfg.trend.model_dump()
        self.expectation_params = cfg.expectation.model_dump()
        self.peer_params = cfg.peer.model_dump()
        self.decline_params = cfg.decline.model_dump()
        self.min_history = cfg.expectation.min_history
        self.peer_min_n = cfg.peer.min_n
        self.peer_z = cfg.peer.z_threshold
        self.peer_gap = cfg.peer.min_gap
        self.z_threshold = cfg.expectation.z_threshold
        self.resolve_after_ms = int(cfg.resolve_after.total_seconds() * 1000)
        self.hold_ms = int(cfg.regional_hold.total_seconds() * 1000)

    def new_watch(self, site_id: str) -> AttributeWatch:
        site = self.sites.get(site_id)
        offset = UTC_OFFSET_HOURS.get(site.country.upper(), 0) if site else 0
        return AttributeWatch(self.trend_params, {**self.expectation_params, "utc_offset_hours": offset},
                              self.peer_params, {**self.decline_params, "utc_offset_hours": offset})

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
