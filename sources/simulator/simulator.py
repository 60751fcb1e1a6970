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

from datetime import datetime, timezone
from typing import Iterator

from boucle.config.settings import Settings
from boucle.config.times import DAY_MS
from boucle.sources.message import RawMessage
from boucle.sources.simulator.generate import (
    Context,
    merged_records,
    site_count,
    site_records,
)
from boucle.sources.simulator.incidents import plan_incidents
from boucle.sources.simulator.model import QuestionModel
from boucle.sources.simulator.profiles import SiteProfile, build_profiles

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
    ) -> None:
        sim = settings.simulation

        def pick(value, default):
            return default if value is None else value

        self.seed = int(pick(seed, sim.seed))
        self.start = pick(start, sim.start)
        self.days = float(pick(days, sim.days))
        self.volume_scale = float(pick(volume_scale, sim.volume_scale))
        self.malformed_share = float(pick(malformed_share, sim.malformed_share))
        self.late_share = float(pick(late_share, sim.late_share))
        self.with_incidents = bool(pick(incidents, sim.incidents))
        if self.days <= 0 or self.volume_scale <= 0:
            raise ValueError("days and volume_scale must be positive")
        if not (0 <= self.malformed_share <= 1 and 0 <= self.late_share <= 1):
            raise ValueError("malformed_share and late_share must be within 0..1")
        start_ms = _epoch_ms(self.start)
        self.profiles: list[SiteProfile] = build_profiles(settings.sites, len(settings.attributes), self.seed)
        model = QuestionModel.from_names(a.name for a in settings.attributes)
        self.incidents = (
            plan_incidents(self.profiles, model, self.seed, start_ms, self.days, self.volume_scale)
            if self.with_incidents else []
        )
        self._ctx = Context(
            scores=dict(settings.scores), attributes=list(settings.attributes), seed=self.seed, start_ms=start_ms,
            end_ms=start_ms + round(self.days * DAY_MS), volume_scale=self.volume_scale,
            malformed_share=self.malformed_share, late_share=self.late_share, model=model,
            incidents=self.incidents,
        )
        self._counts: dict[int, int] = {}
        self._labels: list[dict] | None = None

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
            for p in self.profiles:
                for _ in site_records(self._ctx, p, labels):
                    pass
            self._labels = labels
        return [dict(label) for label in self._labels]
