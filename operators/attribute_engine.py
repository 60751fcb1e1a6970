"""The policy of attribute alerts: detector parameters per site, severity, wording, alert building.

What the site and region steps (:mod:`operators.attribute_sites`, :mod:`operators.attribute_regions`)
share and look up, built once from the settings; it holds no state that changes with the stream,
so it is not part of any snapshot.

Severity = effect (rating points) x importance (relative to an average attribute) x confidence,
ranked by ``attribute_alerts.severity_levels``:

>>> from boucle.config.settings import Settings
>>> engine = AttributeAlertEngine(Settings())
>>> evidence = {"baseline": 4.0, "level": 3.2, "z": -6.0}
>>> engine.severity(evidence, 1.0), round(evidence["severity_score"], 2)
('high', 0.8)
>>> _num(3.14159, "fr"), _num(3.14159, "en", 2)
('3,1', '3.14')

Messages write a level on its question's scale (``3.2/5``, ``7.4/10``) and a slope in the unit that
fits the series' volume: per day for a series answered at least daily, per week for one answered
at least weekly, per month below that:

>>> slope_unit(30.0), slope_unit(0.5), slope_unit(0.05)
('day', 'week', 'month')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import median
from typing import Any

from boucle.config.loader import ConfigError
from boucle.config.locales import format_number, label_in, language_of, texts
from boucle.config.settings import RiverDetector, Settings
from boucle.config.times import local_days
from boucle.detectors import AttributeWatch
from boucle.detectors.river_adapter import RiverSpecError, parse_option, resolve
from boucle.operators.alerts import new_alert
from boucle.operators.attribute_lifecycle import OpenAlert

__all__ = ["SEVERITIES", "SLOPE_UNIT_DAYS", "AttributeAlertEngine", "slope_unit",
           "with_river_detector"]

SEVERITIES = ("low", "medium", "high", "critical")


def _words(language: str) -> Mapping[str, str]:
    return texts("alerts", language)["attribute"]


SLOPE_UNIT_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0}


def slope_unit(responses_per_day: float) -> str:
    """The unit of a slope for a series answered ``responses_per_day``: the shortest of day, week,
    month over which it gets at least one response (a per-day slope on a review a month reads as 0)."""
    for unit, days in SLOPE_UNIT_DAYS.items():
        if responses_per_day * days >= 1.0:
            return unit
    return "month"


def _num(value: float, language: str, digits: int = 1) -> str:
    return format_number(value, language, digits, grouping=False) if math.isfinite(value) else f"{value}"


# Evidence in rating points: positions on the scale, and differences of them.
_POSITIONS = ("level", "baseline", "run_level", "run_baseline", "peer_level", "peer_median")
_DIFFERENCES = ("std_err", "drop", "slope", "decline", "peer_spread", "gap", "shrunk_gap")


def _native(evidence: dict[str, float], low: int, factor: float) -> dict[str, float]:
    """``evidence`` of a series brought to a 1-5 scale (``1 + (x - low) * factor``), back on its own.

    >>> _native({"level": 3.0, "drop": 0.8, "z": -4.0}, 0, 0.4)
    {'level': 5.0, 'drop': 2.0, 'z': -4.0}
    """
    out = dict(evidence)
    for key in _POSITIONS:
        if key in out:
            out[key] = low + (out[key] - 1.0) / factor
    for key in _DIFFERENCES:
        if key in out:
            out[key] = out[key] / factor
    return out


class AttributeAlertEngine:
    """Everything the two steps share: settings, detector parameters, alert building."""

    def __init__(self, settings: Settings) -> None:
        cfg = self.cfg = settings.attribute_alerts
        self.sites = settings.site_map()
        # Local hour and day of week of the detectors' seasonality: each site's zone at its standard
        # offset (a fixed offset keeps the detectors' day cells stable; an hour of daylight saving
        # stays inside their 6-hour blocks).
        self.utc_offset_hours = {site: local_days(zone).standard_offset_hours()
                                 for site, zone in settings.site_zones().items() if zone}
        self.region_of = {s.id: s.region for s in settings.sites}
        self.attribute_names = [a.name for a in settings.attributes]
        self.labels = {a.name: a.labels_by_language(a.name) for a in settings.attributes}
        self.region_language = {}
        for region in {s.region for s in settings.sites}:
            langs = [s.language for s in settings.sites if s.region == region]
            self.region_language[region] = max(set(langs), key=langs.count)
        self.region_names = {r.id: r.name or r.id for r in settings.regions}
        # A regional incident goes to the region's manager and team (the region id when it names none).
        self.region_routing = {r.id: (r.manager, r.team or r.id) for r in settings.regions}
        self.spans = {a.name: max(a.max - a.min, 1) for a in settings.attributes}  # rating points of a scale
        self.scale_max = {name: q.max for name, q in settings.questions().items()}  # "x/10" for NPS, "x/5" ...
        # Headline scores watched as series (watch_scores): (min, factor to a 1-5 scale; None on 1-5).
        self.score_scales: dict[str, tuple[int, float | None]] = {
            name: (m.min, None if (m.min, m.max) == (1, 5) else 4.0 / max(m.max - m.min, 1))
            for name, m in settings.scores.items()} if cfg.watch_scores else {}
        for name, m in settings.scores.items():
            self.labels.setdefault(name, m.labels_by_language(name))
        # Every parameter, defaults included: the settings models mirror the detectors' constructors.
        self.trend_params = cfg.trend.model_dump()
        self.expectation_params = cfg.expectation.model_dump()
        self.peer_params = cfg.peer.model_dump()
        self.decline_params = cfg.decline.model_dump()
        # river's detectors ([[attribute_alerts.detectors]]): resolved now, so a bad one fails at start.
        for i, entry in enumerate(cfg.detectors):
            try:
                resolve(entry.use, entry.params)
            except RiverSpecError as exc:
                raise ConfigError(f"attribute_alerts.detectors[{i}].{exc.key}: {exc}") from None
        self._river: dict[str, tuple[list[dict[str, Any]], bool]] = {}  # question -> (alarm kwargs, own triggers)
        self.clock_params = cfg.clock.model_dump()
        # The region's detectors: key-driver importance over the catalogue, one peer group per attribute.
        self.importance_params = {"half_life_days": cfg.importance_half_life.total_seconds() / 86400,
                                  "min_n": cfg.importance_min_n, "prior_strength": cfg.importance_prior_strength,
                                  "names": tuple(self.attribute_names)}
        self.group_params = {"min_peers": cfg.peer_min_sites, "min_n": cfg.peer.min_n}
        self.min_history = cfg.expectation.min_history
        self.peer_min_n = cfg.peer.min_n
        self.peer_z = cfg.peer.z_threshold
        self.peer_gap = cfg.peer.min_gap
        self.z_threshold = cfg.expectation.z_threshold
        self.resolve_after_ms = int(cfg.resolve_after.total_seconds() * 1000)
        self.hold_ms = int(cfg.regional_hold.total_seconds() * 1000)

    def river_for(self, question: str) -> tuple[list[dict[str, Any]], bool]:
        """The river alarms of ``question``'s series (:class:`~detectors.river_adapter.RiverAlarm`
        keyword dicts) and whether Boucle's local triggers stay on (no entry with ``replace``)."""
        found = self._river.get(question)
        if found is None:
            entries = [e for e in self.cfg.detectors if "*" in e.questions or question in e.questions]
            found = self._river[question] = ([e.alarm_params() for e in entries],
                                             not any(e.replace for e in entries))
        return found

    def new_watch(self, site_id: str, state: dict[str, Any] | None = None, question: str = "") -> AttributeWatch:
        """The detectors of a series of ``site_id`` (on ``question``), on the site's local time, with the
        current parameters: new, or resumed from ``state`` (:meth:`AttributeWatch.state`). A headline
        score sums the good and bad days of every attribute: its between-day spread is ``score_day_sd``."""
        offset = self.utc_offset_hours.get(site_id, 0)
        day = {"day_sd": self.cfg.score_day_sd} if question in self.score_scales else {}
        score_h = {"h": self.cfg.score_trend_h} if day and self.cfg.score_trend_h is not None else {}
        params = ({**self.trend_params, **day, **score_h}, {**self.expectation_params, "utc_offset_hours": offset, **day},
                  self.peer_params, {**self.decline_params, "utc_offset_hours": offset, **day}, self.clock_params)
        river, own = self.river_for(question) if self.cfg.detectors else ((), True)
        if state is None:
            return AttributeWatch(*params, river=river, own_triggers=own)
        return AttributeWatch.from_state(state, *params, river=river, own_triggers=own)

    def severity(self, evidence: dict[str, float], relative_importance: float) -> str:
        """The severity of ``evidence`` (its ``severity_score`` is added to it)."""
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
        """An ``attribute`` alert of ``alert`` in the site's language (a headline score's numbers on its
        own scale: the detectors saw it on a 1-5 one)."""
        scale = self.score_scales.get(attr)
        if scale is not None and scale[1] is not None:
            evidence = _native(evidence, *scale)
        site = self.sites.get(site_id)
        language = site.language if site else "en"
        w = _words(language)
        label = self._label(attr, language)
        name = (site.name or site.id) if site else site_id
        text = (f"{label} {w['at']} {name} : " if language_of(language) == "fr" else f"{label} {w['at']} {name}: ")
        scale = self.scale_max.get(attr, 5)
        rate = evidence.get("rate_per_day")  # the series' own clock (absent before its second response)
        unit = slope_unit(rate) if rate is not None else "day"
        if evidence["n"] < 1 <= evidence.get("run_n", 0):
            # A thin series: its recent window has decayed to under one response; its CUSUM's run of
            # low responses is what the alert stands on.
            text += (f"{w[status]}, {_num(evidence['run_level'], language)}/{scale} "
                     f"{w['last'].format(n=int(evidence['run_n']))} "
                     f"({w['expected']} {_num(evidence['run_baseline'], language)}")
        else:
            text += (f"{w[status]}, {_num(evidence['level'], language)}/{scale} {w['recent']} "
                     f"({w['expected']} {_num(evidence['baseline'], language)}, n={evidence['n']:.0f}, "
                     f"z={_num(evidence['z'], language)}")
        if "peer_median" in evidence:
            text += f", {w['peers']} {_num(evidence['peer_median'], language)}"
        slope = evidence["slope"] * SLOPE_UNIT_DAYS[unit]  # the detectors' slope is per day
        text += f", {w['slope']} {_num(slope, language, 2)}{w[unit]})."
        return new_alert(
            id=alert.id, kind="attribute", severity=alert.severity, site_id=site_id,
            region=self.region_of.get(site_id, ""), triggers=triggers,
            evidence={k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                      for k, v in evidence.items()},
            message=text, event_ms=event_ms, owner=site.owner if site else "", team=site.team if site else "",
            attribute=attr, status=status, detected_ms=detected_ms,
        )

    def _label(self, name: str, language: str) -> str:
        return label_in(self.labels.get(name, {}), language) or name

    def regional_alert(self, alert: OpenAlert, status: str, region: str, attr: str, down: list[str],
                       n_sites: int, zs: dict[str, float], event_ms: int, detected_ms: int) -> dict[str, Any]:
        """A ``regional_incident`` alert of ``alert`` in the region's most common language."""
        language = self.region_language.get(region, "en")
        owner, team = self.region_routing.get(region, ("", region))
        w = _words(language)
        label = self._label(attr, language)
        z_values = [zs[s] for s in down] or [0.0]
        text = (f"{w['region']} — {label}, {self.region_names.get(region, region)}: {len(down)} {w['sites']} "
                f"{n_sites} (z {_num(median(z_values), language)})" + (f", {w['resolved']}" if status == "resolved"
                                                                      else "") + ".")
        return new_alert(
            id=alert.id, kind="regional_incident", severity=alert.severity, site_id="", region=region,
            triggers=["expectation", "trend"], attribute=attr, status=status,
            evidence={"sites_down": down, "n_sites": n_sites, "median_z": round(median(z_values), 4)},
            message=text, event_ms=event_ms, detected_ms=detected_ms, owner=owner, team=team,
        )


def with_river_detector(settings: Settings, option: str, replace: bool = True, **entry: Any) -> Settings:
    """``settings`` with one more ``[[attribute_alerts.detectors]]`` entry read from the command-line
    form ``river:drift.PageHinkley(threshold=30, mode="down")`` (the benchmarks' ``--detector``);
    ``replace``: Boucle's local triggers off, so the alerts are the river detector's. ``entry``: more
    keys of the entry (``questions``, ``hold_days``...). Checked as the engine would at start.

    >>> s = with_river_detector(Settings(), "river:drift.ADWIN(delta=0.01)")
    >>> [(d.use, d.params, d.replace) for d in s.attribute_alerts.detectors]
    [('river:drift.ADWIN', {'delta': 0.01}, True)]
    """
    try:
        spec, params = parse_option(option)
        detector = RiverDetector(use=spec, params=params, replace=replace, **entry)
        resolve(detector.use, detector.params)
    except (RiverSpecError, ValueError) as exc:
        raise ConfigError(f"--detector {option}: {exc}") from None
    cfg = settings.attribute_alerts
    alerts = cfg.model_copy(update={"detectors": [*cfg.detectors, detector]})
    return settings.model_copy(update={"attribute_alerts": alerts})
