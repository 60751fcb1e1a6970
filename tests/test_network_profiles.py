"""Network profiles of the simulator (demo, retail, reviews) and the detector benchmark that measures them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import orjson
import pytest

from boucle.config.loader import load_settings
from boucle.operators.decode import Decoder
from boucle.sources.simulator import INCIDENT_KINDS, Simulator
from boucle.sources.simulator.networks import PROFILES, network_settings

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks" / "detectors.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_detectors", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def _events(sim):
    return [orjson.loads(m.value) for m in sim.messages()]


@pytest.fixture(scope="module")
def reviews(settings):
    sim = Simulator(settings, profile="reviews", sites=60, seed=3, malformed_share=0.0, late_share=0.0)
    return sim, _events(sim)


@pytest.fixture(scope="module")
def retail(settings):
    sim = Simulator(settings, profile="retail", sites=300, days=42, seed=3, malformed_share=0.0, late_share=0.0)
    return sim, _events(sim)


def test_demo_is_the_default_and_unchanged(settings):
    sim = Simulator(settings, days=1, volume_scale=0.2)
    assert sim.network.name == "demo" and sim.settings is settings and sim.days == 1
    assert Simulator(settings).days == 28


@pytest.mark.parametrize("profile", ["retail", "reviews"])
def test_profiles_are_deterministic_by_seed(settings, profile):
    def run(seed):
        sim = Simulator(settings, profile=profile, sites=40, days=120, seed=seed)
        return [m.value for m in sim.messages()], sim.labels()

    first, again, other = run(5), run(5), run(6)
    assert first == again and first[0]
    assert set(other[0]).isdisjoint(first[0])


def test_a_generated_registry_is_settings_compatible(settings):
    generated = network_settings(settings, PROFILES["retail"])
    assert len(generated.sites) == 2000 and len({s.id for s in generated.sites}) == 2000
    assert {s.region for s in generated.sites} == {r.id for r in generated.regions}
    assert generated.attributes == settings.attributes
    # The registry does not depend on the seed: one warehouse can hold several seeds of a profile.
    assert Simulator(settings, profile="retail", seed=1).settings.sites == Simulator(
        settings, profile="retail", seed=2).settings.sites


def test_retail_volumes_run_from_one_a_week_to_a_hundred_a_day(settings):
    sim = Simulator(settings, profile="retail", seed=1)
    assert len(sim.profiles) >= 2000 and sim.days >= 365
    daily = np.array([p.daily_mean for p in sim.profiles])
    assert daily.min() == pytest.approx(1 / 7) and daily.max() == pytest.approx(100)
    assert 0.4 < np.median(daily) < 2  # heavy-tailed: most sites are thin
    assert (daily >= 3).sum() >= 200


def test_retail_counts_follow_the_volumes(retail):
    sim, events = retail
    per_site = Counter(e["site_id"] for e in events)
    busy = max(sim.profiles, key=lambda p: p.daily_mean)
    assert per_site[busy.site_id] / sim.days == pytest.approx(busy.daily_mean, rel=0.25)
    assert sorted(per_site.values())[len(per_site) // 2] < 60  # the median site: about one response a day


def test_reviews_are_sparse_long_date_only_with_unanswered_attributes(settings, reviews):
    sim, events = reviews
    assert 5 * 365 <= sim.days <= 10 * 365
    weekly = np.array([p.daily_mean * 7 for p in sim.profiles])
    assert weekly.min() >= 0.05 - 1e-9 and weekly.max() <= 3 + 1e-9
    offsets = {p.site_id: p.utc_offset for p in sim.profiles}
    for e in events[:2000]:
        hour = (int(e["occurred_at"][11:13]) + offsets[e["site_id"]]) % 24
        assert e["occurred_at"].endswith(":00:00.000Z") and hour == 0  # local midnight
    assert all(set(e["scores"]) == {"csat"} for e in events)
    names = [a.name for a in settings.attributes]
    answered = {n: sum(n in e["attributes"] for e in events) / len(events) for n in names}
    assert all(answered[n] > 0.9 for n in names[:3]) and all(answered[n] < 0.15 for n in names[3:])
    values = np.array([v for e in events for v in e["attributes"].values()])
    assert 1.1 < values.std() < 1.5 and 0.05 < (values == 1).mean() < 0.3


def test_reviews_carry_one_scale_change_rescaled_at_the_source(settings, reviews):
    sim, events = reviews
    changes = [label for label in sim.labels() if label["type"] == "scale_change"]
    assert len(changes) == 1
    change = changes[0]
    assert change["source_scale"] == [1, 10] and change["catalogue_scale"] == [1, 5]
    name = change["attribute"]
    before = [e["attributes"][name] for e in events if name in e["attributes"] and e["occurred_at"] < change["until"]]
    after = [e["attributes"][name] for e in events if name in e["attributes"] and e["occurred_at"] >= change["until"]]
    assert before and after and set(before) | set(after) <= {1, 2, 3, 4, 5}  # on the catalogue's scale
    # Every event decodes with the generated registry (no dead letter for the old scale or the dates).
    decoder = Decoder(sim.settings)
    batch = decoder.decode_many(list(sim.messages()))
    assert not batch.rejected and len(batch.accepted) == len(events)


@pytest.mark.parametrize("fixture", ["retail", "reviews"])
def test_every_incident_kind_and_incident_free_sites(request, fixture):
    sim, _ = request.getfixturevalue(fixture)
    kinds = Counter(i.kind for i in sim.incidents)
    assert set(kinds) == set(INCIDENT_KINDS) and kinds["step_drop"] >= 2
    touched = {s for i in sim.incidents for s in i.sites}
    assert len(touched) < len(sim.profiles)  # incident-free sites exist
    per_site = Counter(s for i in sim.incidents if i.kind != "regional_drop" for s in i.sites)
    assert max(per_site.values()) == 1


def test_reviews_slides_last_quarters(settings):
    sim = Simulator(settings, profile="reviews", seed=1)
    slides = [i for i in sim.incidents if i.kind == "gradual_decline"]
    assert slides and all(i.end_ms - i.start_ms >= 90 * 86_400_000 for i in slides)


def test_the_null_shuffle_keeps_each_sites_dates_and_ratings(reviews):
    bench = _bench()
    sim, _ = reviews
    decoder = Decoder(sim.settings)
    events = decoder.decode_many(list(sim.messages())).accepted
    null = bench.NullShuffle(sim.settings.questions(), sim.settings.scores, seed=1)
    for event in events:
        null.record(event)
    shuffled = [null.apply(event) for event in events]
    by_site, by_site_null = defaultdict(list), defaultdict(list)
    for a, b in zip(events, shuffled):
        assert (a.site_id, a.ts_ms, a.event_id) == (b.site_id, b.ts_ms, b.event_id)
        by_site[a.site_id].append(orjson.dumps([a.scores, a.attributes], option=orjson.OPT_SORT_KEYS))
        by_site_null[b.site_id].append(orjson.dumps([b.scores, b.attributes], option=orjson.OPT_SORT_KEYS))
    assert all(Counter(by_site[s]) == Counter(by_site_null[s]) for s in by_site)
    assert sum(by_site[s] != by_site_null[s] for s in by_site) > len(by_site) / 2  # really permuted


@pytest.mark.parametrize("profile, extra", [("demo", ["--days", "2"]), ("retail", ["--days", "30", "--sites", "60"]),
                                            ("reviews", ["--days", "400", "--sites", "40"])])
def test_a_tiny_benchmark_run_of_each_profile(tmp_path, profile, extra):
    out = tmp_path / "detectors.json"
    done = subprocess.run([sys.executable, str(BENCH), "--profile", profile, "--seeds", "1", "--no-progress",
                           "--json", str(out), "--plot", str(tmp_path / "plot"), *extra],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["profile"] == profile
    assert set(result["incidents"]) <= set(INCIDENT_KINDS) and result["incidents"]
    assert {"recall", "precision", "median_delay_hours", "median_delay_responses"} <= set(
        next(iter(result["incidents"].values())))
    assert result["false_alerts_per_100_site_months"] >= 0
    assert result["null_false_alerts_per_100_site_months"] >= 0
    assert ("eligible" in result) == (profile != "demo")


def test_an_unknown_detector_is_refused():
    done = subprocess.run([sys.executable, str(BENCH), "--detector", "river:drift.Nope", "--seeds", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not available" in done.stderr


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.parametrize("fixture", ["retail", "reviews"])
def test_step_drops_are_in_the_data_at_their_labelled_size(request, fixture):
    sim, events = request.getfixturevalue(fixture)
    observed, expected = [], []
    for inc in (i for i in sim.incidents if i.kind == "step_drop"):
        before, during = [], []
        for e in events:
            if e["site_id"] == inc.site_id and inc.attribute in e["attributes"]:
                t = _ms(e["occurred_at"])
                (during if inc.start_ms <= t < inc.end_ms else before if t < inc.start_ms else []).append(
                    e["attributes"][inc.attribute])
        if len(before) >= 5 and len(during) >= 5:
            observed.append(np.mean(before) - np.mean(during))
            expected.append(inc.magnitude)
    assert len(observed) >= 3
    assert 0.6 < sum(observed) / sum(expected) < 1.4
