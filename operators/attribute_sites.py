"""The site step of the attribute alerts: every (site, attribute) detector, updated per response.

Each batch of one site's responses updates that site's :class:`~detectors.AttributeWatch` per
attribute and yields a :class:`SiteSummary` for its region: each series' recent mean/n/sd (for
peers), local triggers with the event time of the response that first raised them, evidence, and
the responses' ratings for the key-driver analysis.

A site's state snapshots as plain data (:meth:`SiteState.snapshot`) and is rebuilt from the engine of
the run, hence the current ``[attribute_alerts.*]`` parameters, and that snapshot
(:meth:`SiteState.from_snapshot`; what each detector keeps or starts afresh: :mod:`detectors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from boucle.config.times import DAY_MS
from boucle.detectors import AttributeWatch, Halo
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.decode import Feedback

__all__ = ["SeriesStatus", "SeriesWatch", "SiteState", "SiteSummary"]


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


@dataclass(frozen=True, slots=True)
class SeriesWatch:
    """Whether a (site, question) series is watched, or warming up and how much evidence it still needs.

    Sent when it changes, and once per event-time day of the series (``needs`` moves with every
    response): the warehouse keeps the latest per series (``series_status``)."""

    site_id: str
    region: str
    question: str
    watched: bool
    needs: float  # about how many more responses before it is watched (0 once it is)
    n_history: float  # decayed responses behind its level
    responses: int  # responses seen
    per_day: float  # its own rate (responses a day)
    t_ms: int


@dataclass(slots=True)
class SiteSummary:
    """What one batch of a site's responses tells its region."""

    site_id: str
    region: str
    t_ms: int
    series: dict[str, SeriesStatus]
    responses: list[tuple[dict[str, int], float]] = field(default_factory=list)  # (attributes, target)
    watch: list[SeriesWatch] = field(default_factory=list)  # the series whose status is news
    points: dict[str, tuple[list[float], list[int]]] = field(default_factory=dict)  # question -> (ratings, ms)


class SiteState:
    """The detectors of one site: an :class:`AttributeWatch` per attribute, and the site's halo.

    The engine it is given is the run's policy, not state: :meth:`snapshot` holds the detectors'
    learnt states only, and :meth:`from_snapshot` rebuilds them with the engine's parameters.
    """

    halo: Halo | None = None  # (states pickled whole before the halo had none)

    reported: dict[str, tuple[bool, int]] | None = None  # (states pickled whole before it existed)

    def __init__(self) -> None:
        self.watches: dict[str, AttributeWatch] = {}
        self.site_id = ""
        self.halo = Halo()
        self.reported = {}  # question -> (watched, event-time day) last sent as a SeriesWatch

    def snapshot(self) -> dict[str, Any]:
        """``{"site_id", "halo": Halo.state(), "watches": {attribute: AttributeWatch.state()}}``: dicts,
        lists, tuples, numbers and strings only, no parameter."""
        return {"site_id": self.site_id, "halo": None if self.halo is None else self.halo.state(),
                "watches": {name: watch.state() for name, watch in self.watches.items()},
                "reported": dict(self.reported or {})}

    @classmethod
    def from_snapshot(cls, engine: AttributeAlertEngine, snapshot: dict[str, Any]) -> SiteState:
        """The state of :meth:`snapshot`, its detectors built with ``engine``'s (current) parameters."""
        new = cls()
        site_id = new.site_id = snapshot["site_id"]
        if snapshot["halo"] is not None:
            new.halo = Halo.from_state(snapshot["halo"])
        new.watches = {name: engine.new_watch(site_id, state, name) for name, state in snapshot["watches"].items()}
        new.reported = {name: tuple(sent) for name, sent in snapshot.get("reported", {}).items()}
        return new

    def _halos(self, engine: AttributeAlertEngine, attributes: dict[str, int], t_ms: int) -> dict[str, float]:
        """Each rating's halo in rating points: what the respondent's other ratings predict of it
        (:class:`~detectors.Halo`), from each series' expectation before the batch; 0 for a series
        without history yet."""
        halo = self.halo
        if halo is None:
            halo = self.halo = Halo()
        spans, watches = engine.spans, self.watches
        surprises: dict[str, float] = {}
        cell = None
        for name, value in attributes.items():
            watch = watches.get(name)
            if watch is not None:
                if cell is None:  # the series of a site share its local time, hence the seasonal cell
                    cell = watch.expectation.cell(t_ms)
                s = watch.surprise(value, t_ms, cell)
                if s is not None:
                    surprises[name] = s / spans.get(name, 1)
        if len(surprises) < 2:
            return {name: 0.0 for name in attributes}
        predicted = halo.halos(surprises)
        halo.learn(list(surprises.values()), t_ms)
        return {name: predicted.get(name, 0.0) * spans.get(name, 1) for name in attributes}

    def add(self, engine: AttributeAlertEngine, events: list[Feedback]) -> SiteSummary | None:
        """Feed a batch of this site's responses (arrival order) to its series; None for no events."""
        if not events:
            return None
        site_id = self.site_id = events[0].site_id
        watches = self.watches
        # The series are independent: feed each its ratings of the batch in order, in one go.
        points: dict[str, tuple[list[int], list[int]]] = {}  # attribute -> (ratings, ms) in arrival order
        halos: dict[str, list[float]] = {}  # attribute -> each rating's halo (with a halo correlation)
        responses = []
        target = engine.cfg.importance_target
        with_halo = engine.cfg.halo
        score_scales = engine.score_scales
        for event in events:
            t = event.ts_ms
            attributes = event.attributes
            if with_halo:
                for name, h in self._halos(engine, attributes, t).items():
                    halos.setdefault(name, []).append(h)
            for name, value in attributes.items():
                series = points.get(name)
                if series is None:
                    points[name] = ([value], [t])
                else:
                    series[0].append(value)
                    series[1].append(t)
            # Headline scores are series too, each on its own scale brought to a 1-5 one (the detectors'
            # floors and minimum declines are in points of a 1-5 scale).
            for name, value in event.scores.items():
                scale = score_scales.get(name)
                if scale is None:
                    continue
                lo, factor = scale
                x = value if factor is None else 1.0 + (value - lo) * factor
                series = points.get(name)
                if series is None:
                    points[name] = ([x], [t])
                else:
                    series[0].append(x)
                    series[1].append(t)
            y = event.scores.get(target)
            if y is not None and attributes:
                responses.append((dict(attributes), float(y)))
        series = {}
        news = []
        reported = self.reported
        if reported is None:
            reported = self.reported = {}
        region = engine.region_of.get(site_id, "")
        for name, (values, times) in points.items():
            watch = watches.get(name)
            if watch is None:
                watch = watches[name] = engine.new_watch(site_id, question=name)
            # A live source hands over one rating per series at a time: then that rating is the one
            # that raised any alarm, and no copy is needed; nor for a series warming up that the batch
            # cannot bring to a test's minimum history (no local test can fire).
            before = watch.copy() if len(values) > 1 and watch.needs() < len(values) else None
            halo = halos.get(name)
            watch.update_many(values, times, halo)
            mean, n, sd = watch.peer.summary()
            triggers, evidence = watch.verdict()  # one verdict per series and batch
            triggers = [t for t in triggers if t != "peer"]
            # Only a series in alarm after the batch needs the response that first raised it: replay the
            # batch on the copy, checking after every response (the rare case; the answer is the same).
            if not triggers:
                first = None
            elif before is None:
                first = times[0]
            else:
                first = _first_alarm(before, values, times, halo)
            latest = max(times)
            series[name] = SeriesStatus(mean, n, sd, triggers, evidence, first, latest)
            watched, day = watch.watched, latest // DAY_MS
            if reported.get(name) != (watched, day):
                reported[name] = (watched, day)
                clock = watch.clock
                news.append(SeriesWatch(site_id, region, name, watched, watch.needs(),
                                        watch.expectation.level.w, watch.count,
                                        DAY_MS / clock.gap_ms if clock.gap_ms > 0 else 0.0, watch.t_ms))
        return SiteSummary(site_id, region, max(s.t_ms for s in series.values())
                           if series else events[-1].ts_ms, series, responses, news, points)


def _first_alarm(watch: AttributeWatch, values: list[int], times: list[int], halos: list[float] | None = None
                 ) -> int | None:
    """Event time of the first rating of ``values`` after which ``watch`` has a local trigger."""
    for i, (value, t) in enumerate(zip(values, times)):
        watch.update(value, t, halos[i] if halos is not None else 0.0)
        if watch.local_alarm:
            return t
    return None
