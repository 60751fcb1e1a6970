"""Labelled incidents: what goes wrong, where and when, deterministic by seed.

Kinds (the ground truth an evaluation compares alerts against):

- ``step_drop``: one attribute of one busy site (>= 20 responses a day) drops 0.7-1.2 point for
  a few days;
- ``gradual_decline``: one attribute of one site slides linearly by 0.5-1.0 point over 14 days;
- ``regional_drop``: one attribute drops ~0.8 point at every site of one region for 2-3 days;
- ``bad_burst``: 10-20 very bad responses at one site within two hours.

These are the demo's (:func:`plan_incidents`). A generated network profile
(:mod:`sources.simulator.networks`) lists its own, sized to its volumes and length, and
:func:`plan_network_incidents` places them: several of each kind, one incident per site at most.

``magnitude`` is the drop of the *mean rating* on the attribute's 1-5 scale; since rounding and
clipping damp a shift of the latent quality, each affected site gets the latent shift that
produces that observable drop (:func:`sources.simulator.model.shift_for_drop`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from boucle.config.times import DAY_MS, HOUR_MS, iso_ms
from boucle.sources.simulator.model import QuestionModel, shift_for_drop
from boucle.sources.simulator.networks import IncidentSpec
from boucle.sources.simulator.profiles import SiteProfile, network_rng

__all__ = ["INCIDENT_KINDS", "Incident", "plan_incidents", "plan_network_incidents"]

INCIDENT_KINDS = ("step_drop", "gradual_decline", "regional_drop", "bad_burst")


@dataclass(frozen=True)
class Incident:
    incident_id: str
    kind: str
    site_id: str | None
    region: str
    sites: tuple[str, ...]
    attribute: str | None
    start_ms: int
    end_ms: int
    magnitude: float | None
    responses: int = 0  # bad_burst only: how many bad responses
    latent_shift: dict[str, float] = field(default_factory=dict)  # site id -> latent shift at full size

    def drop(self, site_id: str, t_ms: np.ndarray) -> np.ndarray:
        """Latent drop (>= 0) of the attribute at ``site_id`` at times ``t_ms``."""
        full = self.latent_shift.get(site_id, 0.0)
        inside = (t_ms >= self.start_ms) & (t_ms < self.end_ms)
        if self.kind == "gradual_decline":
            ramp = (t_ms - self.start_ms) / max(self.end_ms - self.start_ms, 1)
            return np.where(inside, full * np.clip(ramp, 0.0, 1.0), 0.0)
        return np.where(inside, full, 0.0)

    def label(self) -> dict:
        return {
            "type": "incident",
            "incident_id": self.incident_id,
            "kind": self.kind,
            "site_id": self.site_id,
            "region": self.region,
            "sites": list(self.sites),
            "attribute": self.attribute,
            "start": iso_ms(self.start_ms),
            "end": iso_ms(self.end_ms),
            "magnitude": self.magnitude,
            "responses": self.responses if self.kind == "bad_burst" else None,
        }


def _start(rng, start_ms: int, days: float, lead: float, length: float, hour_lo=6, hour_hi=14) -> int:
    """A start time with ``lead`` days of history before it and room for ``length`` days after."""
    lead = min(lead, days * 0.3)
    latest = max(lead, days - length - min(1.0, days * 0.1))
    day = int(rng.integers(int(lead), int(latest) + 1)) if latest >= lead + 1 else int(lead)
    return start_ms + day * DAY_MS + int(rng.integers(hour_lo, hour_hi + 1)) * HOUR_MS


def plan_incidents(
    profiles: list[SiteProfile],
    model: QuestionModel,
    seed: int,
    start_ms: int,
    days: float,
    volume_scale: float = 1.0,
) -> list[Incident]:
    """The incidents of a simulation; most sites stay incident-free.

    >>> from boucle.config.loader import load_settings
    >>> from boucle.sources.simulator.profiles import build_profiles
    >>> s = load_settings()
    >>> plan = plan_incidents(build_profiles(s.sites, len(s.attributes), 42),
    ...                       QuestionModel.from_names(a.name for a in s.attributes), 42, 1790812800000, 28)
    >>> sorted({i.kind for i in plan}) == sorted(INCIDENT_KINDS)
    True
    """
    if not profiles or not model.names:
        return []
    rng = network_rng(seed, 1)
    span = days * DAY_MS
    incidents: list[Incident] = []
    used: set[str] = set()
    n_attr = len(model.names)

    def shift(p: SiteProfile, a: int, drop: float) -> float:
        mu = model.base[a] + p.level + p.attribute_effects[a]
        return shift_for_drop(mu, model.latent_sd, drop)

    def new_id() -> str:
        return f"inc-{len(incidents) + 1:03d}"

    # A regional drop first: its sites are then kept free of other incidents.
    regions: dict[str, list[SiteProfile]] = {}
    for p in profiles:
        regions.setdefault(p.site.region, []).append(p)
    region = sorted(regions)[int(rng.integers(len(regions)))]
    members = regions[region]
    a = int(rng.integers(n_attr))
    length = min(float(rng.integers(2, 4)), days * 0.3)
    t0 = _start(rng, start_ms, days, 7, length)
    magnitude = round(float(rng.uniform(0.75, 0.9)), 2)
    incidents.append(
        Incident(new_id(), "regional_drop", None, region, tuple(p.site_id for p in members),
                 model.names[a], t0, min(t0 + int(length * DAY_MS), start_ms + int(span)), magnitude,
                 latent_shift={p.site_id: shift(p, a, magnitude) for p in members})
    )
    used.update(p.site_id for p in members)

    free = [p for p in profiles if p.site_id not in used]
    busy = [p for p in free if p.daily_mean * volume_scale >= 20] or sorted(
        free, key=lambda p: -p.daily_mean)[:3]
    n_step = min(int(rng.integers(2, 4)), len(busy))
    for p in (busy[i] for i in rng.choice(len(busy), n_step, replace=False)):
        a = int(rng.integers(n_attr))
        length = min(float(rng.integers(3, 7)), days * 0.3)
        t0 = _start(rng, start_ms, days, 7, length)
        magnitude = round(float(rng.uniform(0.7, 1.2)), 2)
        incidents.append(
            Incident(new_id(), "step_drop", p.site_id, p.site.region, (p.site_id,), model.names[a], t0,
                     min(t0 + int(length * DAY_MS), start_ms + int(span)), magnitude,
                     latent_shift={p.site_id: shift(p, a, magnitude)})
        )
        used.add(p.site_id)

    free = [p for p in profiles if p.site_id not in used and p.daily_mean * volume_scale >= 8] or [
        p for p in profiles if p.site_id not in used] or profiles
    n_grad = min(int(rng.integers(1, 3)), len(free))
    for p in (free[i] for i in rng.choice(len(free), n_grad, replace=False)):
        a = int(rng.integers(n_attr))
        length = min(14.0, days * 0.5)
        t0 = _start(rng, start_ms, days, 5, length)
        magnitude = round(float(rng.uniform(0.5, 1.0)), 2)
        incidents.append(
            Incident(new_id(), "gradual_decline", p.site_id, p.site.region, (p.site_id,), model.names[a],
                     t0, min(t0 + int(length * DAY_MS), start_ms + int(span)), magnitude,
                     latent_shift={p.site_id: shift(p, a, magnitude)})
        )
        used.add(p.site_id)

    free = [p for p in profiles if p.site_id not in used] or profiles
    p = free[int(rng.integers(len(free)))]
    t0 = _start(rng, start_ms, days, 1, 1, hour_lo=8, hour_hi=15) - p.utc_offset * HOUR_MS
    t0 = max(start_ms, min(t0, start_ms + int(span) - 2 * HOUR_MS))
    incidents.append(
        Incident(new_id(), "bad_burst", p.site_id, p.site.region, (p.site_id,), None, t0,
                 t0 + 2 * HOUR_MS, None, responses=int(rng.integers(10, 21)))
    )
    return incidents


def plan_network_incidents(
    profiles: list[SiteProfile],
    model: QuestionModel,
    seed: int,
    start_ms: int,
    days: float,
    specs: tuple[IncidentSpec, ...],
    *,
    volume_scale: float = 1.0,
    lead_days: float = 7.0,
    questions: int | None = None,
    burst_days: float = 0.0,
) -> list[Incident]:
    """The incidents of a generated network: ``specs`` in order, regional drops first.

    Each site has one incident at most (a regional drop keeps its whole region); a spec's sites are
    drawn among the free sites within its volume range (fewer if there are not enough). Incidents
    bear on the first ``questions`` questions of the catalogue (all by default: core questions only
    on a review network). ``burst_days`` > 0 spreads a burst over that many days (review bombing).

    >>> from boucle.config.loader import load_settings
    >>> from boucle.sources.simulator.networks import PROFILES, network_settings
    >>> from boucle.sources.simulator.profiles import build_profiles
    >>> s = network_settings(load_settings(), PROFILES["retail"], n_sites=300)
    >>> plan = plan_network_incidents(build_profiles(s.sites, 8, 1, median_daily=2), QuestionModel.from_names(
    ...     a.name for a in s.attributes), 1, 1790812800000, 365, PROFILES["retail"].incidents)
    >>> sorted({i.kind for i in plan}) == sorted(INCIDENT_KINDS), len({i.site_id for i in plan if i.site_id})
    (True, 40)
    """
    if not profiles or not model.names:
        return []
    rng = network_rng(seed, 2)
    end_ms = start_ms + int(days * DAY_MS)
    n_q = min(questions or len(model.names), len(model.names))
    incidents: list[Incident] = []
    used: set[str] = set()

    def shift(p: SiteProfile, a: int, drop: float) -> float:
        return shift_for_drop(model.base[a] + p.level + p.attribute_effects[a], model.latent_sd, drop)

    def window(spec: IncidentSpec) -> tuple[int, int, float]:
        length = float(rng.uniform(*spec.length_days))
        length = min(length, days * 0.4)
        lead = min(lead_days, days * 0.3)
        latest = max(lead, days - length)
        day = int(rng.integers(int(lead), int(latest) + 1)) if latest >= lead + 1 else int(lead)
        t0 = start_ms + day * DAY_MS + int(rng.integers(6, 15)) * HOUR_MS
        return t0, min(t0 + int(length * DAY_MS), end_ms), length

    regions: dict[str, list[SiteProfile]] = {}
    for p in profiles:
        regions.setdefault(p.site.region, []).append(p)
    ordered = sorted(specs, key=lambda spec: spec.kind != "regional_drop")  # stable: regions first
    for spec in ordered:
        if spec.kind == "regional_drop":
            free_regions = [r for r in sorted(regions) if not used.intersection(p.site_id for p in regions[r])]
            picks = rng.choice(len(free_regions), min(spec.count, len(free_regions)), replace=False)
            for region in (free_regions[i] for i in picks):
                members = regions[region]
                a = int(rng.integers(n_q))
                t0, t1, _ = window(spec)
                magnitude = round(float(rng.uniform(*spec.magnitude)), 2)
                incidents.append(Incident(
                    f"inc-{len(incidents) + 1:03d}", "regional_drop", None, region,
                    tuple(p.site_id for p in members), model.names[a], t0, t1, magnitude,
                    latent_shift={p.site_id: shift(p, a, magnitude) for p in members}))
                used.update(p.site_id for p in members)
            continue
        pool = [p for p in profiles if p.site_id not in used
                and spec.min_daily <= p.daily_mean * volume_scale < spec.max_daily]
        picks = rng.choice(len(pool), min(spec.count, len(pool)), replace=False) if pool else []
        for p in (pool[i] for i in picks):
            used.add(p.site_id)
            if spec.kind == "bad_burst":
                t0, _, _ = window(IncidentSpec("bad_burst", 1, length_days=(1, 1)))
                t0 = max(start_ms, min(t0 - p.utc_offset * HOUR_MS, end_ms - 2 * HOUR_MS))
                span = int(burst_days * DAY_MS) if burst_days > 0 else 2 * HOUR_MS
                incidents.append(Incident(
                    f"inc-{len(incidents) + 1:03d}", "bad_burst", p.site_id, p.site.region, (p.site_id,), None,
                    t0, min(t0 + span, end_ms), None, responses=int(rng.integers(spec.responses[0],
                                                                                   spec.responses[1] + 1))))
                continue
            a = int(rng.integers(n_q))
            t0, t1, _ = window(spec)
            magnitude = round(float(rng.uniform(*spec.magnitude)), 2)
            incidents.append(Incident(
                f"inc-{len(incidents) + 1:03d}", spec.kind, p.site_id, p.site.region, (p.site_id,),
                model.names[a], t0, t1, magnitude, latent_shift={p.site_id: shift(p, a, magnitude)}))
    return incidents
