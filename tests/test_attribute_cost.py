"""The attribute step's speed-ups change no result.

Simulated runs through the dataflow's attribute step (partition clock and canonical region order,
in-process as ``benchmarks/attribute_cost.py`` drives it) digest every site summary (each series'
mean, n, sd, triggers, evidence, first alarm, status news: the exact floats) and every alert. The
digests were recorded on main before the speed-ups (68aa390); a deliberate change of behaviour
records them again (``python tests/test_attribute_cost.py`` prints them), a speed-up never does.
"""

from __future__ import annotations

import hashlib
import random
import sys

import pytest

from boucle.config.times import DAY_MS, HOUR_MS
from boucle.detectors import AttributeWatch, KeyDriverImportance
from boucle.operators.attribute_engine import AttributeAlertEngine
from boucle.operators.attribute_order import OrderSpec, _PartitionClock, _RegionOrder, by_partition
from boucle.operators.attribute_sites import SiteState
from boucle.operators.decode import DecodedBatch, Decoder, Feedback
from boucle.sources.simulator import Simulator

# scenario -> (summaries digest, alerts digest, number of alerts), recorded on main (68aa390; again
# with score_trend_h = 20, a change of behaviour; alerts again when regional incidents took the
# region manager as owner and the region's team; again when the evidence gained the CUSUM's run,
# run_n / run_level / run_baseline: without those keys the digests are unchanged)
RECORDED = {
    "demo-no-scores": ("f4e9b94a3ba9d196", "d1ff6e1740465147", 8),
    "demo-scores": ("c7952988cf07459c", "d1ff6e1740465147", 8),
    "reviews": ("3df9ce91e61d9291", "88f2fe4d67e409e2", 8),
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


def _per_response_batch(watch: AttributeWatch, xs, ts, halos=None) -> None:
    """The batch path as it was before the fused loop: each rating through each detector's own
    ``update`` on the series' clock, the river alarms after, the thresholds moved at the batch's end."""
    taus = [watch.clock.tick(t) for t in ts]
    ex, trend = watch.expectation, watch.trend
    for j, (x, tau, t) in enumerate(zip(xs, taus, ts)):
        expected, seasonal = ex.learn(x, tau, t)
        trend.update(x, tau, expected if ex.level.w >= trend.min_history else None)
        watch.decline.update(x - seasonal - (halos[j] if halos else 0.0), tau)
        watch.peer.update(x, tau)
    for alarm in watch.river:
        alarm.update_many(xs, taus)
    watch.count += len(xs)
    watch.t_ms = max(watch.t_ms, max(ts))
    watch._adapt()


def _stream(rng: random.Random, kind: str, n: int) -> tuple[list[int], list[int], list[float]]:
    """Ratings, times (some late) and halos of a busy, thin or bursty series with a drop."""
    t, ts = 0, []
    for _ in range(n):
        gap = {"busy": rng.expovariate(1 / (HOUR_MS / 3)), "thin": rng.expovariate(1 / (4 * DAY_MS)),
               "bursty": rng.choice((60_000, 20 * HOUR_MS, 3 * DAY_MS))}[kind]
        t += int(gap)
        ts.append(t - (int(rng.uniform(0, 3 * DAY_MS)) if rng.random() < 0.05 else 0))
    xs = [min(5, max(1, round(rng.gauss(4.0 - (i > 0.8 * n), 1.0)))) for i in range(n)]
    return xs, ts, [rng.gauss(0, 0.3) for _ in range(n)]


@pytest.mark.parametrize("kind", ["busy", "thin", "bursty"])
@pytest.mark.parametrize("river", [False, True])
def test_the_fused_batch_path_gives_the_floats_of_each_detectors_update(settings, kind, river):
    engine = AttributeAlertEngine(settings)
    params = dict(trend=engine.trend_params, expectation=engine.expectation_params, peer=engine.peer_params,
                  decline=engine.decline_params, clock=engine.clock_params)
    if river:
        params["river"] = [{"spec": "river:drift.PageHinkley", "params": {"mode": "down"}, "trigger": "trend"}]
    rng = random.Random(f"{kind}-{river}")
    xs, ts, halos = _stream(rng, kind, 1500)
    fused, reference, single = AttributeWatch(**params), AttributeWatch(**params), AttributeWatch(**params)
    k = 0
    while k < len(xs):
        size = rng.choice((1, 2, 4, 9, 30))
        chunk = slice(k, k + size)
        with_halo = halos[chunk] if rng.random() < 0.5 else None
        fused.update_many(xs[chunk], ts[chunk], with_halo)
        _per_response_batch(reference, xs[chunk], ts[chunk], with_halo)
        for x, t, h in zip(xs[chunk], ts[chunk], with_halo or [0.0] * size):
            single.update(x, t, h)
        assert fused.verdict() == reference.verdict() == (reference.triggers(), reference.evidence())
        k += size
    assert fused.state() == reference.state()
    assert fused.count == len(xs) and fused.watched
    if kind == "busy":  # one clock rate, one set of thresholds: the batch path is the per-response one
        assert fused.state() == single.state()


def test_importance_learns_a_batch_as_one_response_after_another():
    rng = random.Random(9)
    names = [f"q{i}" for i in range(8)]
    batch, single = KeyDriverImportance(names=names[:5]), KeyDriverImportance(names=names[:5])
    for step in range(400):
        responses = [({n: rng.randint(1, 5) for n in names if rng.random() < 0.7}, float(rng.randint(0, 10)))
                     for _ in range(rng.choice((1, 2, 5, 12)))]
        t = step * HOUR_MS - (step % 9 == 0) * 5 * HOUR_MS  # some late slots: a decayed weight
        batch.learn_many(responses, t)
        for response in responses:
            single.learn_many([response], t)
    assert batch.names == single.names and len(batch.names) == len(names)
    assert batch.state() == single.state()


if __name__ == "__main__":  # print the digests to record
    from boucle.config.loader import SHIPPED_CONFIG, load_settings

    mp = pytest.MonkeyPatch()
    for scenario in sorted(RECORDED):
        print(f'    "{scenario}": {run_digests(load_settings(SHIPPED_CONFIG), scenario, mp)},')
        mp.undo()
    sys.exit(0)
