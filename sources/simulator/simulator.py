"""The simulator: synthetic feedback for a whole network, with ground truth, by seed.

>>> from boucle.config.loader import load_settings
>>> sim = Simulator(load_settings(), days=1, volume_scale=0.2)
>>> first = next(sim.messages())
>>> first.origin, first.partition, first.offset, first.key.startswith(b"store-")
('simulator', 0, 0, True)
>>> sim.count() == sum(1 for _ in sim.messages())
True
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator

from boucle.config.settings import Settings
from boucle.config.times import DAY_MS, iso_ms
from boucle.sources.message import RawMessage
from boucle.sources.simulator.generate import (
    Context,
    merged_records,
    site_count,
    site_records,
)
from boucle.sources.simulator.incidents import plan_incidents, plan_network_incidents
from boucle.sources.simulator.model import QuestionModel
from boucle.sources.simulator.networks import PROFILES, NetworkProfile, network_settings
from boucle.sources.simulator.profiles import SiteProfile, build_profiles, network_rng

__all__ = ["Simulator"]

ORIGIN = "simulator"


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("start must be an aware datetime (UTC)")
    return round(moment.astimezone(timezone.utc).timestamp() * 1000)


class Simulator:
    """Realistic survey responses for the sites of ``settings``, deterministic by ``seed``.

    Every keyword left to ``None`` takes ``settings.simulation.<same name>``. Content depends on
    the seed and knobs only, never on how :meth:`messages` is partitioned.

    The simulator takes the settings as a whole because it reads most of them: the entity registry
    (the sites), the catalogue (scores and attributes) and the ``simulation`` section. It passes on
    only those: the profiles get the sites, the site streams the catalogue.

    ``profile`` (default ``simulation.profile``) picks the network (:mod:`sources.simulator.networks`);
    a generated one replaces the registry, and :attr:`settings` is then what the flow must decode with.
    ``sites`` (default ``simulation.sites``) sets how many sites a generated profile has; ``days``
    defaults to ``simulation.days``, else to the profile's own length. Unless ``start`` is given, a
    generated profile's history ends where the demo's month ends (``simulation.start`` + 28 days).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        seed: int | None = None,
        start: datetime | None = None,
        days: float | None = None,
        volume_scale: float | None = None,
        malformed_share: float | None = None,
        late_share: float | None = None,
        incidents: bool | None = None,
        profile: str | None = None,
        sites: int | None = None,
    ) -> None:
        sim = settings.simulation
        name = profile or sim.profile
        if name not in PROFILES:
            raise ValueError(f"unknown network profile {name!r} (known: {', '.join(PROFILES)})")
        self.network: NetworkProfile = PROFILES[name]
        if sites is not None and sites < 1:
            raise ValueError("sites must be >= 1")
        self.settings: Settings = network_settings(settings, self.network, sites or sim.sites)
        settings = self.settings
        net = self.network

        def pick(value, default):
            return default if value is None else value

        self.seed = int(pick(seed, sim.seed))
        self.start = pick(start, sim.start)
        self.days = float(pick(days, pick(sim.days, net.days)))
        if start is None and net.generated():
            # Years of history end where the demo's month ends, not years ahead (the decoder refuses
            # times more than input.max_future from now).
            self.start = sim.start + timedelta(days=PROFILES["demo"].days - self.days)
        self.volume_scale = float(pick(volume_scale, sim.volume_scale))
        self.malformed_share = float(pick(malformed_share, sim.malformed_share))
        self.late_share = float(pick(late_share, sim.late_share))
        self.with_incidents = bool(pick(incidents, sim.incidents))
        if self.days <= 0 or self.volume_scale <= 0:
            raise ValueError("days and volume_scale must be positive")
        if not (0 <= self.malformed_share <= 1 and 0 <= self.late_share <= 1):
            raise ValueError("malformed_share and late_share must be within 0..1")
        start_ms = _epoch_ms(self.start)
        n_attr = len(settings.attributes)
        if net.generated():
            self.profiles: list[SiteProfile] = build_profiles(
                settings.sites, n_attr, self.seed, median_daily=net.median_daily, sigma_daily=net.sigma_daily,
                min_daily=net.min_daily, max_daily=net.max_daily, level_sd=net.level_sd)
        else:
            self.profiles = build_profiles(settings.sites, n_attr, self.seed)
        model = QuestionModel.from_names((a.name for a in settings.attributes), answer_p=self._answer_p(n_attr),
                                         base_shift=net.base_shift, loading=net.loading, noise=net.noise)
        end_ms = start_ms + round(self.days * DAY_MS)
        if not self.with_incidents:
            self.incidents = []
        elif net.generated():
            self.incidents = plan_network_incidents(
                self.profiles, model, self.seed, start_ms, self.days, net.incidents, volume_scale=self.volume_scale,
                lead_days=net.lead_days, questions=net.core_questions or None, burst_days=net.burst_days)
        else:
            self.incidents = plan_incidents(self.profiles, model, self.seed, start_ms, self.days, self.volume_scale)
        self.scale_change: dict | None = None
        change = None
        if net.scale_change is not None and net.scale_change.question < n_attr:
            sc = net.scale_change
            until = start_ms + round(self.days * sc.at_share * DAY_MS)
            change = (sc.question, sc.source_min, sc.source_max, until, sc.usage_shift)
            attribute = settings.attributes[sc.question]
            self.scale_change = {
                "type": "scale_change", "attribute": attribute.name, "until": iso_ms(until),
                "source_scale": [sc.source_min, sc.source_max], "catalogue_scale": [attribute.min, attribute.max],
                "rescaled_at_source": True, "usage_shift": sc.usage_shift,
            }
        self._ctx = Context(
            scores=dict(settings.scores), attributes=list(settings.attributes), seed=self.seed, start_ms=start_ms,
            end_ms=end_ms, volume_scale=self.volume_scale,
            malformed_share=self.malformed_share, late_share=self.late_share, model=model,
            incidents=self.incidents, date_only=net.date_only, chunk_days=net.chunk_days,
            emitted_scores=net.scores, scale_change=change,
        )
        self._counts: dict[int, int] = {}
        self._labels: list[dict] | None = None

    def _answer_p(self, n_attr: int):
        """A profile's answer probabilities: core questions nearly always, the others rarely (None: the model's)."""
        net = self.network
        if not net.core_questions:
            return None
        rng = network_rng(self.seed, 3)
        core = min(net.core_questions, n_attr)
        return [*rng.uniform(*net.core_answer, core), *rng.uniform(*net.rare_answer, n_attr - core)]

    def _sites(self, partition: int, partitions: int) -> list[SiteProfile]:
        if partitions < 1 or not 0 <= partition < partitions:
            raise ValueError(f"partition {partition} is not within 0..{partitions - 1}")
        return [p for p in self.profiles if p.index % partitions == partition]

    def messages(self, partition: int = 0, partitions: int = 1) -> Iterator[RawMessage]:
        """Messages of the sites with ``site index % partitions == partition``, in arrival order."""
        keys = [p.site_id.encode() for p in self.profiles]
        offset = 0
        for batch in merged_records(self._ctx, self._sites(partition, partitions)):
            for arrival, index, _, value in batch:
                yield RawMessage(value, ORIGIN, partition, offset, keys[index], arrival)
                offset += 1

    def count(self, partition: int = 0, partitions: int = 1) -> int:
        """Exactly how many messages :meth:`messages` yields (draws the volumes only)."""
        total = 0
        for p in self._sites(partition, partitions):
            if p.index not in self._counts:
                self._counts[p.index] = site_count(self._ctx, p)
            total += self._counts[p.index]
        return total

    def labels(self) -> list[dict]:
        """Ground truth for the whole network: incidents, then each site's labels in site order."""
        if self._labels is None:
            labels = [incident.label() for incident in self.incidents]
            if self.scale_change is not None:
                labels.append(dict(self.scale_change))
            for p in self.profiles:
                for _ in site_records(self._ctx, p, labels):
                    pass
            self._labels = labels
        return [dict(label) for label in self._labels]
