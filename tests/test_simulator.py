"""The synthetic feedback simulator: determinism, partitioning, realism, ground truth, bytewax source."""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
import numpy as np
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main

from boucle.config.loader import load_settings
from boucle.config.settings import CHANNELS
from boucle.sources.simulator import (
    INCIDENT_KINDS,
    JOURNEY_STAGES,
    MALFORMED_REASONS,
    Simulator,
    SimulatorSource,
)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
OCCURRED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
PHONE = re.compile(r"(\+\d{2} ?\d|0\d)[\d ]{7,}")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def settings():
    return load_settings()


@pytest.fixture(scope="module")
def full(settings):
    """The default 28-day simulation: messages, labels and the valid events (by arrival)."""
    sim = Simulator(settings)
    messages = list(sim.messages())
    labels = sim.labels()
    malformed = {label["raw_sha1"] for label in labels if label["type"] == "malformed"}
    events = [orjson.loads(m.value) for m in messages if hashlib.sha1(m.value).hexdigest() not in malformed]
    return sim, messages, labels, events


@pytest.fixture(scope="module")
def small(settings):
    return Simulator(settings, days=3, volume_scale=0.5, seed=7)


def _attribute_mean(events, sites, attribute, lo_ms, hi_ms):
    values = [e["attributes"][attribute] for e in events
              if e["site_id"] in sites and attribute in e["attributes"] and lo_ms <= _ms(e["occurred_at"]) < hi_ms]
    return float(np.mean(values)), len(values)


# -- determinism and partitioning -------------------------------------------------------------

def test_same_seed_same_bytes_different_seed_differs(settings, small):
    again = Simulator(settings, days=3, volume_scale=0.5, seed=7)
    first = [(m.value, m.key, m.received_ms, m.offset) for m in small.messages()]
    assert first == [(m.value, m.key, m.received_ms, m.offset) for m in again.messages()]
    assert small.labels() == again.labels()
    other = [m.value for m in Simulator(settings, days=3, volume_scale=0.5, seed=8).messages()]
    assert set(other).isdisjoint(m[0] for m in first)


def test_partitioned_union_equals_unpartitioned_and_count_matches(small):
    whole = list(small.messages())
    assert small.count() == len(whole)
    union = []
    for p in range(3):
        part = list(small.messages(p, 3))
        assert small.count(p, 3) == len(part)
        assert [m.offset for m in part] == list(range(len(part)))
        assert {m.partition for m in part} == {p} and {m.origin for m in part} == {"simulator"}
        arrivals = [m.received_ms for m in part]
        assert arrivals == sorted(arrivals)
        union += part
    assert sorted(m.value for m in union) == sorted(m.value for m in whole)
    keys = {m.value: m.key for m in whole}
    assert all(keys[m.value] == m.key for m in union)


# -- the event contract and realism ---------------------------------------------------------

def test_events_follow_the_contract(full, settings):
    _, messages, _, events = full
    sites = {s.id for s in settings.sites}
    attributes = {a.name for a in settings.attributes}
    assert all(b"\n" not in m.value for m in messages)
    valid = {e["event_id"] for e in events}
    for m in messages[:3000]:
        event = orjson.loads(m.value) if m.value.endswith(b"}") else {}
        if event.get("event_id") in valid:
            assert m.key == event["site_id"].encode()
    for e in events[:5000]:
        assert list(e)[:5] == ["event_id", "occurred_at", "site_id", "channel", "journey_stage"]
        assert UUID.match(e["event_id"]) and OCCURRED.match(e["occurred_at"])
        assert e["site_id"] in sites and e["channel"] in CHANNELS and e["journey_stage"] in JOURNEY_STAGES
        assert 0 <= e["scores"]["nps"] <= 10 and 1 <= e["scores"]["csat"] <= 5 and 1 <= e["scores"]["ces"] <= 7
        assert set(e["attributes"]) <= attributes and all(1 <= v <= 5 for v in e["attributes"].values())
        assert e["language"] in ("fr", "en") and isinstance(e["comment"], str)
        assert isinstance(e["customer"]["id"], str) and isinstance(e["customer"]["consent_contact"], bool)
        if not e["customer"]["consent_contact"]:
            assert "email" not in e["customer"] and "phone" not in e["customer"]
    assert len({e["event_id"] for e in events}) == len(events)


def test_volumes_are_heavy_tailed_and_seasonal(full, settings):
    sim, messages, _, events = full
    assert 40_000 <= len(messages) <= 90_000
    per_site_day = Counter(e["site_id"] for e in events)
    daily = sorted(n / sim.days for n in per_site_day.values())
    assert daily[0] < 6 and daily[-1] > 120 and 15 < daily[len(daily) // 2] < 45
    continental = {s.id for s in settings.sites if s.country in ("FR", "BE")}  # simulated at UTC+1
    local = [datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")) + timedelta(hours=1)
             for e in events if e["site_id"] in continental]
    weekdays = Counter(t.weekday() for t in local)
    assert weekdays.most_common(1)[0][0] == 5 and min(weekdays, key=weekdays.get) == 6
    hours = Counter(t.hour for t in local)
    assert hours[11] > 2 * hours[8] and hours[18] > hours[14] and hours[3] < hours[11] / 20
    channels = Counter(e["channel"] for e in events)
    assert set(channels) == set(CHANNELS) and channels.most_common(1)[0][0] == "store"
    assert set(Counter(e["journey_stage"] for e in events)) == set(JOURNEY_STAGES)


def test_scores_are_realistic_and_driven_by_attributes(full, settings):
    _, _, _, events = full
    nps = np.array([e["scores"]["nps"] for e in events])
    detractors, promoters = (nps <= 6).mean(), (nps >= 9).mean()
    assert 0.18 <= detractors <= 0.32 and 20 <= 100 * (promoters - detractors) <= 40
    corr = {}
    for a in settings.attributes:
        pairs = np.array([(e["attributes"][a.name], e["scores"]["nps"]) for e in events if a.name in e["attributes"]])
        corr[a.name] = np.corrcoef(pairs.T)[0, 1]
    assert all(c > 0.25 for c in corr.values())
    assert corr["waiting_time"] > corr["store_layout"] + 0.1
    assert corr["staff_friendliness"] > corr["cleanliness"] + 0.08
    answered = Counter(name for e in events for name in e["attributes"])
    assert all(0.55 * len(events) < answered[a.name] < 0.97 * len(events) for a in settings.attributes)
    # Peak hours and Saturdays hurt waiting time.
    def waiting(pred):
        return np.mean([e["attributes"]["waiting_time"] for e in events
                        if "waiting_time" in e["attributes"] and pred(_ms(e["occurred_at"]))])
    saturday = lambda t: datetime.fromtimestamp(t / 1000, timezone.utc).weekday() == 5  # noqa: E731
    assert waiting(saturday) < waiting(lambda t: not saturday(t)) - 0.1
    site_nps = defaultdict(list)
    for e in events:
        site_nps[e["site_id"]].append(e["scores"]["nps"])
    means = [np.mean(v) for v in site_nps.values() if len(v) > 500]
    assert max(means) - min(means) > 0.4  # sites differ


def test_comments_languages_customers(full, settings):
    _, _, _, events = full
    comments = [e for e in events if e["comment"]]
    assert 0.28 < len(comments) / len(events) < 0.42
    assert all("\n" not in e["comment"] for e in comments)
    english = {s.id for s in settings.sites if s.language == "en"}
    english_sites = [e for e in comments if e["site_id"] in english]
    assert 0.01 < sum(e["language"] == "fr" for e in english_sites) / len(english_sites) < 0.1
    texts = [e["comment"] for e in comments]
    pii = sum(bool(EMAIL.search(t) or PHONE.search(t)) for t in texts) / len(texts)
    assert 0.01 < pii < 0.04
    assert any("pas trop long" in t for t in texts) and any("not too long" in t for t in texts)
    assert any("J'ai acheté" in t for t in texts) and any("order" in t for t in texts)
    detractor_waits = [e["comment"] for e in comments if e["scores"]["nps"] <= 4 and e["language"] == "fr"
                       and min(e["attributes"].values(), default=5) == e["attributes"].get("waiting_time")
                       and sum(v == e["attributes"]["waiting_time"] for v in e["attributes"].values()) == 1]
    assert detractor_waits and all("attente" in c.lower() for c in detractor_waits)
    customers = Counter(e["customer"]["id"] for e in events)
    assert customers.most_common(1)[0][1] > 3  # repeat customers
    consent = [e["customer"]["consent_contact"] for e in events]
    assert 0.5 < np.mean(consent) < 0.7
    assert any("email" in e["customer"] for e in events) and any("phone" in e["customer"] for e in events)


# -- ground truth -----------------------------------------------------------------------------

def test_malformed_messages_have_the_configured_share_and_labels(full, settings):
    _, messages, labels, _ = full
    malformed = [label for label in labels if label["type"] == "malformed"]
    assert 0.007 < len(malformed) / len(messages) < 0.013
    reasons = Counter(label["reason_code"] for label in malformed)
    assert set(reasons) == set(MALFORMED_REASONS)
    assert max(reasons.values()) - min(reasons.values()) <= len(settings.sites)
    by_sha = {hashlib.sha1(m.value).hexdigest(): m for m in messages}
    assert len(by_sha) == len(messages)  # unique bytes
    sites = {s.id for s in settings.sites}
    scales = settings.questions()
    for label in malformed:
        message = by_sha[label["raw_sha1"]]
        assert message.key == label["site_id"].encode() and b"\n" not in message.value
        if label["reason_code"] == "invalid_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(message.value)
            continue
        event = orjson.loads(message.value)
        if label["reason_code"] == "unknown_site":
            assert event["site_id"] not in sites
        elif label["reason_code"] == "missing_field":
            assert sum(f not in event for f in ("event_id", "occurred_at", "site_id")) == 1
        elif label["reason_code"] == "out_of_scale":
            ratings = {**event["scores"], **event["attributes"]}
            assert any(not scales[k].min <= v <= scales[k].max for k, v in ratings.items())
        else:
            text = event["occurred_at"]
            try:
                assert datetime.fromisoformat(text).tzinfo is None
            except ValueError:
                pass


def test_the_decoder_agrees_with_every_label(full, settings):
    decode = pytest.importorskip("boucle.operators.decode")
    _, messages, labels, _ = full
    expected = {label["raw_sha1"]: label["reason_code"] for label in labels if label["type"] == "malformed"}
    decoder = decode.Decoder(settings)
    for message in messages:
        got = getattr(decoder.decode(message), "reason_code", None)
        assert got == expected.get(hashlib.sha1(message.value).hexdigest()), message.value[:200]


def test_labels_are_json_and_cover_every_incident_kind(full, settings):
    sim, _, labels, _ = full
    assert orjson.loads(orjson.dumps(labels)) == labels
    incidents = [label for label in labels if label["type"] == "incident"]
    kinds = Counter(label["kind"] for label in incidents)
    assert set(kinds) == set(INCIDENT_KINDS)
    assert 2 <= kinds["step_drop"] <= 3 and 1 <= kinds["gradual_decline"] <= 2
    affected = {site for label in incidents for site in label["sites"]}
    assert len(affected) < len(settings.sites) / 2
    for label in incidents:
        assert OCCURRED.match(label["start"]) and OCCURRED.match(label["end"])
        assert label["start"] < label["end"]
        assert (label["site_id"] is None) == (label["kind"] == "regional_drop")
        assert (label["attribute"] is None) == (label["kind"] == "bad_burst")
    daily = {p.site_id: p.daily_mean for p in sim.profiles}
    assert all(daily[label["site_id"]] >= 20 for label in incidents if label["kind"] == "step_drop")
    assert Simulator(settings, days=3, incidents=False).labels()[0]["type"] != "incident"


def test_incidents_are_visible_in_the_data(full):
    _, _, labels, events = full
    for label in labels:
        if label["type"] != "incident" or label["kind"] == "bad_burst":
            continue
        start, end = _ms(label["start"]), _ms(label["end"])
        sites = set(label["sites"])
        before, _ = _attribute_mean(events, sites, label["attribute"], start - 7 * 86_400_000, start)
        if label["kind"] == "gradual_decline":  # the last quarter of the slide
            during, n = _attribute_mean(events, sites, label["attribute"], end - (end - start) // 4, end)
            assert before - during > 0.5 * label["magnitude"], label
        else:
            during, n = _attribute_mean(events, sites, label["attribute"], start, end)
            assert abs((before - during) - label["magnitude"]) < 0.35, (label, before, during, n)
        if label["kind"] == "regional_drop":  # NPS follows the attribute through its weight
            nps_before = np.mean([e["scores"]["nps"] for e in events if e["site_id"] in sites
                                  and start - 7 * 86_400_000 <= _ms(e["occurred_at"]) < start])
            nps_during = np.mean([e["scores"]["nps"] for e in events if e["site_id"] in sites
                                  and start <= _ms(e["occurred_at"]) < end])
            assert nps_during < nps_before


def test_burst_responses_are_very_bad_new_and_at_their_site(full, settings):
    _, _, labels, events = full
    (burst,) = [label for label in labels if label["type"] == "incident" and label["kind"] == "bad_burst"]
    responses = [label for label in labels if label["type"] == "bad_response"]
    assert 10 <= len(responses) <= 20 and {r["incident_id"] for r in responses} == {burst["incident_id"]}
    by_id = {e["event_id"]: e for e in events}
    seen = Counter(e["customer"]["id"] for e in events)
    keywords = settings.hot_alerts.keywords["purchase"]
    for label in responses:
        event = by_id[label["event_id"]]
        assert event["site_id"] == label["site_id"] == burst["site_id"]
        assert event["scores"]["nps"] <= 2 and event["scores"]["csat"] == 1
        assert _ms(burst["start"]) <= _ms(event["occurred_at"]) < _ms(burst["end"])
        assert any(k in event["comment"].lower() for k in keywords[event["language"]])
        assert event["customer"]["consent_contact"] and seen[event["customer"]["id"]] == 1


def test_late_arrivals_are_out_of_order(full):
    _, messages, labels, events = full
    late = [label for label in labels if label["type"] == "late"]
    assert 0.0015 < len(late) / len(messages) < 0.0045
    delays = [label["delay_seconds"] for label in late]
    assert min(delays) >= 1800 and max(delays) <= 12 * 3600
    assert any(d <= 7200 for d in delays) and any(d > 7200 for d in delays)
    latest, seen_later = "", {}
    for e in events:  # in arrival order
        seen_later[e["event_id"]] = latest > e["occurred_at"]
        latest = max(latest, e["occurred_at"])
    assert all(seen_later[label["event_id"]] for label in late)


# -- the bytewax source ---------------------------------------------------------------------------

def _flow(source, out, fail_at=None):
    flow = Dataflow("simulator_test")
    stream = op.input("in", flow, source)

    def check(message):
        if fail_at is not None and message.partition == 0 and message.offset == fail_at:
            raise RuntimeError("injected failure")
        return message

    op.output("out", op.map("check", stream, check), TestingSink(out))
    return flow


def test_source_delivers_every_message_once(small):
    out = []
    run_main(_flow(SimulatorSource(small, partitions=3, batch_size=97), out))
    assert sorted((m.partition, m.offset) for m in out) == sorted(
        (p, m.offset) for p in range(3) for m in small.messages(p, 3))
    assert sorted(m.value for m in out) == sorted(m.value for m in small.messages())


def test_source_resumes_from_its_snapshot(small, tmp_path):
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    first, second = [], []
    with pytest.raises(BytewaxRuntimeError):  # wraps the injected RuntimeError
        run_main(_flow(SimulatorSource(small, partitions=2, batch_size=50), first, fail_at=300),
                 epoch_interval=timedelta(0), recovery_config=recovery)
    run_main(_flow(SimulatorSource(small, partitions=2, batch_size=50), second),
             epoch_interval=timedelta(0), recovery_config=recovery)
    resumed_at = min(m.offset for m in second if m.partition == 0)
    assert 0 < resumed_at <= 300
    assert {(m.partition, m.offset) for m in first} | {(m.partition, m.offset) for m in second} == {
        (p, m.offset) for p in range(2) for m in small.messages(p, 2)}
    # The partition itself: resuming at offset k yields offsets k, k+1, ...
    part = SimulatorSource(small, partitions=2).build_part("in", "sim-1", 5)
    expected = list(small.messages(1, 2))[5:]
    assert part.next_batch() == expected[:2000]


def test_realtime_holds_messages_until_their_arrival(settings):
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    sim = Simulator(settings, start=start, days=0.5, volume_scale=0.2)
    part = SimulatorSource(sim, realtime=True).build_part("in", "sim-0", None)
    assert part.next_batch() == []
    first = next(sim.messages())
    assert part.next_awake() == datetime.fromtimestamp(first.received_ms / 1000, timezone.utc)
    assert part.snapshot() == 0
    past = Simulator(settings, start=datetime.now(timezone.utc) - timedelta(days=1), days=0.5,
                     volume_scale=0.2, late_share=0.0)
    part = SimulatorSource(past, realtime=True, batch_size=10**6).build_part("in", "sim-0", None)
    assert part.next_batch() == list(past.messages())
    with pytest.raises(StopIteration):
        part.next_batch()
