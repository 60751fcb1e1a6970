"""Network profiles: the shape of a simulated network (how many sites, how busy, for how long, what is asked).

- ``demo``: the registry of the settings (48 busy sites), 28 days, today's simulation unchanged;
- ``retail``: 2,000 generated sites, heavy-tailed volumes from one response a week to 100 a day, a year;
- ``reviews``: 300 generated sites with 0.05-3 reviews a week, eight years, date-only times (local
  midnight), a headline score (CSAT, the overall rating) and three core aspects answered 94-100 % of
  the time, the others 1-10 %; dispersed ratings with a strong halo; one core question was asked on a
  1-10 scale until 40 % of the history (see :class:`ScaleChange`).

A generated registry depends on the profile and the number of sites only (not on the seed), so one
warehouse can hold several seeds of a profile. :func:`network_settings` returns the settings with that
registry, which is what a flow or a benchmark needs to decode the events.

>>> from boucle.config.loader import load_settings
>>> settings = network_settings(load_settings(), PROFILES["retail"], n_sites=50)
>>> len(settings.sites), len(settings.regions), settings.sites[0].id
(50, 12, 'store-0001')
>>> {s.region for s in settings.sites} <= {r.id for r in settings.regions}
True
>>> network_settings(load_settings(), PROFILES["demo"]) == load_settings()
True
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from boucle.config.settings import Region, Settings, Site

__all__ = ["PROFILES", "Eligibility", "IncidentSpec", "NetworkProfile", "ScaleChange", "network_settings"]


@dataclass(frozen=True)
class IncidentSpec:
    """``count`` incidents of ``kind`` at sites answering ``min_daily``..``max_daily`` times a day.

    ``magnitude``: drop of the mean rating (points of a 1-5 scale); ``length_days``: how long it lasts
    (a gradual decline reaches its full size at the end); ``responses``: a burst's bad responses.
    """

    kind: str
    count: int
    magnitude: tuple[float, float] = (0.0, 0.0)
    length_days: tuple[float, float] = (1.0, 1.0)
    min_daily: float = 0.0
    max_daily: float = float("inf")
    responses: tuple[int, int] = (10, 20)


@dataclass(frozen=True)
class Eligibility:
    """Which step drops the issue's targets speak of: at least ``min_magnitude`` points, lasting at
    least ``min_length_days``, at a site answering at least ``min_daily`` times a day."""

    min_magnitude: float
    min_length_days: float
    min_daily: float
    text: str


@dataclass(frozen=True)
class ScaleChange:
    """Question number ``question`` of the catalogue was asked on ``source_min..source_max`` until
    ``at_share`` of the history, then on the catalogue's scale.

    The event contract has one scale per question (the catalogue's), so the *source* rescales the old
    answers linearly onto the catalogue scale and rounds them, as an import of such an export must;
    respondents used the longer scale a little more generously (``usage_shift`` points of the
    catalogue scale), so the rescaled history sits slightly higher than what follows: a step at the
    change that is no incident. The ground truth holds a ``scale_change`` label.
    """

    question: int
    source_min: int
    source_max: int
    at_share: float
    usage_shift: float = 0.15


@dataclass(frozen=True)
class NetworkProfile:
    name: str
    days: float  # default length of a simulation
    n_sites: int | None  # None: the settings' own registry
    n_regions: int = 0
    site_prefix: str = "store"
    kinds: tuple[tuple[str, float], ...] = ()
    countries: tuple[tuple[str, str, float], ...] = (("FR", "fr", 1.0),)  # country, language, share
    # Daily volumes: evenly spaced quantiles of a lognormal, clipped (before volume_scale).
    median_daily: float = 30.0
    sigma_daily: float = 1.0
    min_daily: float = 1.0
    max_daily: float = 200.0
    level_sd: float = 0.22  # site effect on every question
    date_only: bool = False  # occurred_at at local midnight (an export's dates)
    chunk_days: int = 7  # simulated days per generated batch
    scores: tuple[str, ...] | None = None  # headline scores the events carry (None: the catalogue's)
    loading: float | None = None  # halo: weight of the respondent's overall satisfaction (None: model default)
    noise: float | None = None
    base_shift: float = 0.0  # added to every question's base quality
    core_questions: int = 0  # > 0: the first ones answered core_answer, the others rare_answer
    core_answer: tuple[float, float] = (0.94, 1.0)
    rare_answer: tuple[float, float] = (0.01, 0.10)
    scale_change: ScaleChange | None = None
    lead_days: float = 7.0  # history before an incident may start
    burst_days: float = 0.0  # > 0: a burst spreads over this many days (else two hours)
    incidents: tuple[IncidentSpec, ...] = ()
    eligibility: Eligibility | None = None
    regions_names: tuple[str, ...] = field(default=())

    def generated(self) -> bool:
        return self.n_sites is not None


_FR_REGIONS = ("ile-de-france", "hauts-de-france", "grand-est", "normandie", "bretagne", "pays-de-la-loire",
               "centre-val-de-loire", "bourgogne", "auvergne-rhone-alpes", "occitanie", "nouvelle-aquitaine",
               "provence")
_REVIEW_REGIONS = ("london", "paris", "north-america", "iberia", "benelux", "alps", "nordics", "asia")

PROFILES: dict[str, NetworkProfile] = {
    "demo": NetworkProfile("demo", days=28, n_sites=None),
    "retail": NetworkProfile(
        "retail", days=365, n_sites=2000, n_regions=12, site_prefix="store",
        kinds=(("hypermarket", 0.1), ("supermarket", 0.35), ("proximity", 0.55)),
        countries=(("FR", "fr", 0.85), ("BE", "fr", 0.1), ("GB", "en", 0.05)),
        median_daily=0.8, sigma_daily=1.5, min_daily=1 / 7, max_daily=100.0,
        lead_days=42, regions_names=_FR_REGIONS,
        incidents=(
            IncidentSpec("step_drop", 16, (0.5, 1.2), (14, 42), min_daily=3.0),
            IncidentSpec("step_drop", 8, (0.5, 1.2), (21, 56), min_daily=0.3, max_daily=3.0),
            IncidentSpec("gradual_decline", 10, (0.6, 1.0), (21, 56), min_daily=2.0),
            IncidentSpec("regional_drop", 2, (0.6, 0.9), (7, 21)),
            IncidentSpec("bad_burst", 6, responses=(10, 20)),
        ),
        eligibility=Eligibility(0.5, 0.0, 3.0, "step drop >= 0.5 point at sites with >= 3 responses a day"),
    ),
    "reviews": NetworkProfile(
        "reviews", days=2922, n_sites=300, n_regions=8, site_prefix="venue",
        kinds=(("hotel", 0.6), ("restaurant", 0.25), ("lounge", 0.15)),
        countries=(("GB", "en", 0.55), ("FR", "fr", 0.3), ("IE", "en", 0.15)),
        median_daily=0.25 / 7, sigma_daily=1.0, min_daily=0.05 / 7, max_daily=3 / 7, level_sd=0.35,
        date_only=True, chunk_days=364, scores=("csat",), loading=1.15, noise=0.75, base_shift=-0.6,
        core_questions=3, scale_change=ScaleChange(question=2, source_min=1, source_max=10, at_share=0.4),
        lead_days=365, burst_days=3, regions_names=_REVIEW_REGIONS,
        incidents=(
            IncidentSpec("step_drop", 10, (1.0, 1.5), (91, 270), min_daily=8 / 91),
            IncidentSpec("step_drop", 6, (1.0, 1.5), (91, 270), max_daily=8 / 91),
            IncidentSpec("gradual_decline", 6, (1.0, 1.5), (91, 365), min_daily=8 / 91),
            IncidentSpec("regional_drop", 2, (0.8, 1.2), (91, 182)),
            IncidentSpec("bad_burst", 4, responses=(10, 20)),
        ),
        eligibility=Eligibility(1.0, 91.0, 8 / 91, "drop >= 1 point lasting a quarter at sites with >= 8 "
                                                    "reviews a quarter"),
    ),
}


def _registry(profile: NetworkProfile, n_sites: int) -> tuple[list[Region], list[Site]]:
    rng = np.random.default_rng([zlib.crc32(profile.name.encode()), n_sites])
    names = profile.regions_names or tuple(f"region-{i + 1:02d}" for i in range(profile.n_regions))
    names = names[: profile.n_regions]
    regions = [Region(id=name, name=name.replace("-", " ").title()) for name in names]
    # Regions of unequal size (a few large ones), each with at least one site.
    share = rng.dirichlet(np.full(len(regions), 3.0))
    region_of = np.concatenate([np.arange(len(regions)), rng.choice(len(regions), n_sites - len(regions), p=share)]
                               ) if n_sites >= len(regions) else np.arange(n_sites)
    region_of = region_of[rng.permutation(n_sites)]
    kinds = [k for k, _ in profile.kinds] or ["store"]
    kind_p = np.array([p for _, p in profile.kinds] or [1.0])
    kind_of = rng.choice(len(kinds), n_sites, p=kind_p / kind_p.sum())
    country_p = np.array([p for *_, p in profile.countries])
    country_of = rng.choice(len(profile.countries), n_sites, p=country_p / country_p.sum())
    width = max(4, len(str(n_sites)))
    sites = []
    for i in range(n_sites):
        country, language, _ = profile.countries[country_of[i]]
        sites.append(Site(id=f"{profile.site_prefix}-{i + 1:0{width}d}", name=f"{profile.site_prefix.title()} {i + 1}",
                          region=regions[region_of[i]].id, country=country, kind=kinds[kind_of[i]],
                          language=language))  # type: ignore[arg-type]
    used = {s.region for s in sites}
    return [r for r in regions if r.id in used], sites


def network_settings(settings: Settings, profile: NetworkProfile, n_sites: int | None = None) -> Settings:
    """``settings`` with the registry of ``profile`` (unchanged for the demo): what the flow decodes with."""
    if not profile.generated():
        return settings
    regions, sites = _registry(profile, int(n_sites or profile.n_sites))
    return settings.model_copy(update={"regions": regions, "sites": sites})
