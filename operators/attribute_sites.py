"""The site step of the attribute alerts: every (site, attribute) detector, updated per response.

Each batch of one site's responses updates that site's :class:`~detectors.AttributeWatch` per
attribute and yields a :class:`SiteSummary` for its region: each series' recent mean/n/sd (for
peers), local triggers with the event time of the response that first raised them, evidence, and
the responses' ratings for the key-driver analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from detectors import AttributeWatch
from operators.decode import Feedback

if TYPE_CHECKING:
    from operators.attribute_alerts import AttributeAlertEngine

__all__ = ["SeriesStatus", "SiteState", "SiteSummary"]


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
