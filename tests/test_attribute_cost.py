"""The attribute step's speed-ups change no result.

Simulated runs through the dataflow's attribute step (partition clock and canonical region order,
in-process as ``benchmarks/attribute_cost.py`` drives it) digest every site summary (each series'
mean, n, sd, triggers, evidence, first alarm, status news: the exact floats) and every alert. The
digests were recorded on main before the speed-ups (68aa390); a deliberate change of behaviour
records them again (``python tests/test_attribute_cost.py`` prints them), a speed-up never does.
"""

from __future__ import annotations

import hashlib
import sys

import pytest

from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_order import OrderSpec, _PartitionClock, _RegionOrder, by_partition
from boucle.operators.attribute_sites import SiteState
from boucle.operators.decode import DecodedBatch, Decoder, Feedback
from boucle.sources.simulator import Simulator

# scenario -> (summaries digest, alerts digest, number of alerts), recorded on main (68aa390)
RECORDED = {
    "demo-no-scores": ("7406992e5570759b", "91125a2f53662524", 8),
    "demo-scores": ("811bc4b3edee59e0", "91125a2f53662524", 8),
    "reviews": ("8491f9bfaf20762f", "6c1ef31bfa9e88d6", 10),
}


def _scenario(settings, name: str):
    if name == "reviews":
        sim = Simulator(settings, seed=3, profile="reviews", sites=30, days=3 * 365)
        return sim.settings, list(sim.messages())
    cfg = settings.attribute_alerts.model_copy(update={"watch_scores": name == "demo-scores"})
    settings = settings.model_copy(update={"attribute_alerts": cfg})
    return settings, list(Simulator(settings, seed=1, days=7).messages())


def run_digests(settings, name: str, monkeypatch) -> tuple[str, str, int]:
    settings, messages = _scenario(settings, name)
    engine = AttributeAlertEngine(settings)
    summaries = hashlib.sha256()
    add = SiteState.add

    def recording_add(self, engine, events):
        summary = add(self, engine, events)
        if summary is not None:
            series = sorted((name, s.mean, s.n, s.sd, s.triggers, sorted(s.evidence.items()), s.alarm_ms, s.t_ms)
                            for name, s in summary.series.items())
            summaries.update(repr((summary.site_id, summary.t_ms, series, summary.watch)).encode())
        return summary

    monkeypatch.setattr(SiteState, "add", recording_add)
    cfg = settings.attribute_alerts
    region_of = {s.id: s.region for s in settings.sites}
    spec = OrderSpec(step_ms=int(cfg.order_step.total_seconds() * 1000), delay_ms=0, partitions=1,
                     regions=tuple(sorted(set(region_of.values()))), region_of=region_of)
    clock = _PartitionClock(spec, None, engine)
    regions = {region: _RegionOrder(engine, spec, None, lambda: 0) for region in spec.regions}
    decoder = Decoder(settings)
    out = []
    for i in range(0, len(messages), 500):
        decoded = [decoder.decode(m) for m in messages[i:i + 500]]
        batch = DecodedBatch([e for e in decoded if isinstance(e, Feedback)], [], len(decoded))
        shares, _ = clock.on_batch([events for _, events in by_partition(batch)])
        for region, value in shares:
            out += regions[region].on_batch([value])[0]
    for logic in regions.values():
        out += logic.on_eof()[0]
    alerts = [repr(sorted(a.items())) for a in out if isinstance(a, dict)]
    return summaries.hexdigest()[:16], hashlib.sha256("\n".join(alerts).encode()).hexdigest()[:16], len(alerts)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_a_simulated_run_gives_the_summaries_and_alerts_recorded_on_main(settings, name, monkeypatch):
    assert run_digests(settings, name, monkeypatch) == RECORDED[name]


if __name__ == "__main__":  # print the digests to record
    from boucle.config.loader import SHIPPED_CONFIG, load_settings

    mp = pytest.MonkeyPatch()
    for scenario in sorted(RECORDED):
        print(f'    "{scenario}": {run_digests(load_settings(SHIPPED_CONFIG), scenario, mp)},')
        mp.undo()
    sys.exit(0)
