"""Site profiles: how much each site answers and how good it is, deterministic by seed.

Daily volumes are heavy-tailed: sites are ranked (hypermarkets tend to rank higher) and given
evenly spaced quantiles of a lognormal with a median of 30 responses a day, clipped to 1..200,
so every network has a few very busy sites and a few with only a handful of answers a day.
Quality effects (site level, site x attribute) come from the site's own random stream.

>>> from boucle.config.loader import load_settings
>>> settings = load_settings()
>>> profiles = build_profiles(settings.sites, len(settings.attributes), seed=42)
>>> volumes = sorted(p.daily_mean for p in profiles)
>>> volumes[0] < 5 < 20 < volumes[len(volumes) // 2] < 40 < 120 < volumes[-1] <= 200
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from boucle.config.settings import Site
from boucle.sources.simulator.seasonality import UTC_OFFSET_HOURS

__all__ = ["MEDIAN_DAILY", "SiteProfile", "build_profiles", "site_rng"]

MEDIAN_DAILY = 30.0
SIGMA_DAILY = 1.0
MAX_DAILY = 200.0
_KIND_RANK_BONUS = {"hypermarket": 0.9, "supermarket": 0.4}

# Streams of a site's random generator: one per concern, so they never shift one another.
STREAM_PROFILE, STREAM_COUNTS, STREAM_CONTENT, STREAM_CUSTOMERS, STREAM_BURST = range(5)
_NETWORK = 1_000_003


def site_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """The random generator of one concern of one site (independent of any partitioning)."""
    return np.random.default_rng([seed, index, stream])


def network_rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, _NETWORK, stream])


@dataclass(frozen=True)
class SiteProfile:
    index: int
    site: Site
    daily_mean: float  # responses per average day, before volume_scale
    level: float  # site effect on every attribute (rating points)
    attribute_effects: np.ndarray  # site x attribute effects (rating points)
    utc_offset: int

    @property
    def site_id(self) -> str:
        return self.site.id


def build_profiles(
    sites: Sequence[Site],
    n_attributes: int,
    seed: int,
    *,
    median_daily: float = MEDIAN_DAILY,
    sigma_daily: float = SIGMA_DAILY,
    min_daily: float = 1.0,
    max_daily: float = MAX_DAILY,
    level_sd: float = 0.22,
) -> list[SiteProfile]:
    """One profile per site of the registry, in registry order, with effects on ``n_attributes``.

    The keywords shape the volumes (a lognormal's median and sigma, clipped) and the spread of the
    site effects; their defaults are the demo network's (a network profile passes its own).
    """
    n = len(sites)
    rng = network_rng(seed, 0)
    rank_key = rng.normal(0.0, 0.6, n) + np.array([_KIND_RANK_BONUS.get(s.kind, 0.0) for s in sites])
    order = np.argsort(rank_key, kind="stable")
    normal = NormalDist()
    daily = np.empty(n)
    for rank, i in enumerate(order):
        z = normal.inv_cdf((rank + 0.5) / n)
        daily[i] = float(np.clip(median_daily * np.exp(sigma_daily * z), min_daily, max_daily))
    n_attr = n_attributes
    profiles = []
    for i, site in enumerate(sites):
        prng = site_rng(seed, i, STREAM_PROFILE)
        profiles.append(
            SiteProfile(
                index=i,
                site=site,
                daily_mean=float(daily[i]),
                level=float(prng.normal(0.0, level_sd)),
                attribute_effects=prng.normal(0.0, 0.22, n_attr),
                utc_offset=UTC_OFFSET_HOURS.get(site.country.upper(), 0),
            )
        )
    return profiles
