"""The attribute-alert steps in-process, without bytewax: for tests and benchmarks.

:func:`replay` drives the state classes of :func:`operators.attribute_alerts.attribute_alerts`
the way the dataflow does: each batch split by site (arrival order kept), each site's summary
straight to its region's state. For the same batches it gives the same alerts, in the same order
(``tests/test_attribute_alerts.py`` holds the two equal), at a fraction of the cost: no worker,
no snapshots, no wall clock unless asked for one.

>>> from boucle.config.settings import Settings
>>> replay(AttributeAlertEngine(Settings()), [[], []])
[]
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_regions import RegionState
from boucle.operators.attribute_sites import SiteState
from boucle.operators.decode import Feedback

__all__ = ["replay"]


def replay(engine: AttributeAlertEngine, batches: Iterable[list[Feedback]],
           detected_ms: Callable[[], int] | None = None) -> list[dict[str, Any]]:
    """Every alert of ``batches`` (lists of events of any sites) in emission order. ``detected_ms``:
    the detection clock; without one, an alert is detected at its site summary's event time, so a
    replay is deterministic."""
    sites: dict[str, SiteState] = {}
    regions: dict[str, RegionState] = {}
    alerts: list[dict[str, Any]] = []
    for batch in batches:
        groups: dict[str, list[Feedback]] = {}
        for event in batch:
            groups.setdefault(event.site_id, []).append(event)
        for site_id, events in groups.items():
            state = sites.get(site_id) or sites.setdefault(site_id, SiteState())
            summary = state.add(engine, events)
            if summary is None:
                continue
            region = regions.get(summary.region) or regions.setdefault(summary.region, RegionState(engine))
            detected = detected_ms() if detected_ms else summary.t_ms
            alerts.extend(region.add(engine, summary, detected))
    return alerts
