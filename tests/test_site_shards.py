"""Per-site state keyed by shard of sites (issue 15): a batch of many sites is at most ``shards``
keyed items, and the results are those of a per-site key whatever the shard count, resumed too."""

from __future__ import annotations

import ast
import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from bytewax.operators import StatefulBatchLogic
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main
from plain_data import is_plain

from boucle.flows.feedback_flow import FlowOutputs, build_flow, window_spec
from boucle.flows.loop import LoopSources
from boucle.flows.stats import RunStats
from boucle.operators.decode import Decoder
from boucle.operators.site_shards import ShardLogic, SiteShards, shard_of_site
from boucle.operators.windows import _WindowLogic
from boucle.sources.message import RawMessage
from boucle.sources.simulator import Simulator


@pytest.fixture(scope="module")
def network(settings):
    """Three weeks of a thin retail network (300 sites), every 97th message read again later (a duplicate)."""
    sim = Simulator(settings, profile="retail", sites=300, days=21, seed=5)
    messages = list(sim.messages())
    again = messages[::97]
    messages = messages[: len(messages) // 2] + again + messages[len(messages) // 2:]
    messages = [RawMessage(m.value, m.origin, m.partition, i, m.key, m.received_ms) for i, m in enumerate(messages)]
    plain = sim.settings.model_copy(update={
        "attribute_alerts": sim.settings.attribute_alerts.model_copy(update={"enabled": False})})
    return plain, messages


def _with_shards(settings, shards: int):
    return settings.model_copy(update={"state": settings.state.model_copy(update={"site_shards": shards})})


def test_a_batch_of_many_sites_is_at_most_shards_items_each_site_in_order(network):
    settings, messages = network
    batch = Decoder(settings).decode_many(messages[:2000])
    sites = {e.site_id for e in batch.accepted}
    assert len(sites) > 3 * 64  # many more sites than shards
    for shards in (1, 8, 64):
        items = SiteShards(shards)(batch)
        assert len(items) <= shards
        pairs = [(shard, site, events) for shard, site_events in items for site, events in site_events]
        assert all(shard == shard_of_site(site, shards) for shard, site, _ in pairs)
        assert sorted(site for _, site, _ in pairs) == sorted(sites)  # each site once, in one shard
        for _, site, events in pairs:
            assert events == [e for e in batch.accepted if e.site_id == site]  # its arrival order


def _outcome(settings, messages, shards: int, recovery: RecoveryConfig | None = None) -> dict[str, list]:
    """Everything the flow and its loop send out, each output sorted; alerts without their wall-clock time."""
    tables, alerts, dead = [], [], []
    stats = RunStats()
    outputs = FlowOutputs(warehouse=TestingSink(tables), alerts=[TestingSink(alerts)], dead_letters=[TestingSink(dead)])
    flow = build_flow(_with_shards(settings, shards), TestingSource(messages, batch_size=2000), outputs, stats,
                      loop=LoopSources(simulate=True, seed=3))
    run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    out = defaultdict(list)
    for batch in tables:
        out[batch.table] += [repr(row) for row in batch.rows if batch.table != "alerts"]
    out["alert"] = [json.dumps({k: v for k, v in a.items() if k != "detected_at"}, sort_keys=True) for a in alerts]
    out["dead"] = [json.dumps(dict(d), sort_keys=True) for d in dead]
    out["counts"] = [repr({"accepted": stats.accepted, "rejected": stats.rejected, "late": stats.late})]
    return {table: sorted(rows) for table, rows in out.items()}


@pytest.mark.slow
def test_the_results_do_not_depend_on_the_shard_count(network):
    settings, messages = network
    one = _outcome(settings, messages, 1)
    kinds = {json.loads(a)["kind"] for a in one["alert"]}
    assert {"hot", "case_sla"} <= kinds
    assert one["comment_themes"] and one["cases"] and one["attribute_scores"]
    assert any('"duplicate_event"' in d for d in one["dead"])
    assert ast.literal_eval(one["counts"][0])["late"] > 0
    for shards in (64, 65_536):  # the default, and about one site per shard
        assert _outcome(settings, messages, shards) == one


def _per_site(outcome: dict[str, list]) -> dict[str, set]:
    """What the windows and hot alerts sent: rows, late flags, hot alerts and digests, duplicates.

    Not the themes nor the simulated frontline: a resumed source batches its messages anew, and a
    theme window closes at the end of a batch (a comment after that is dropped) while the frontline
    numbers its messages per batch; both results depend on the batch boundaries, shards or not."""
    alerts = {a for a in outcome["alert"] if json.loads(a)["kind"] in ("hot", "hot_digest")}
    dead = {d for d in outcome["dead"] if json.loads(d)["origin"] == "simulator"}
    # An aborted run may stop before its warehouse buffer is written: no rows then.
    return {"attribute_scores": set(outcome.get("attribute_scores", ())), "feedback": set(outcome.get("feedback", ())),
            "alert": alerts, "dead": dead}


@pytest.mark.slow
def test_a_run_resumed_from_its_recovery_store_sends_what_an_uninterrupted_one_does(network, tmp_path):
    """At-least-once: the resumed run sends again what followed the last epoch, never anything else."""
    settings, messages = network
    whole = _per_site(_outcome(settings, messages, 8))
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    middle = len(messages) // 2 + 1000
    aborted = messages[:middle] + [TestingSource.ABORT()] + messages[middle:]
    first = _per_site(_outcome(settings, aborted, 8, recovery))
    resumed = _per_site(_outcome(settings, aborted, 8, recovery))
    assert first["alert"] and resumed["alert"] and resumed["feedback"]  # both runs did work
    for output, sent in whole.items():
        assert first[output] | resumed[output] == sent, output


class _Logic(StatefulBatchLogic):
    """A site's stand-in: notes its calls, asks to be notified at ``due``."""

    def __init__(self, site, snapshot, due=None):
        self.site, self.seen, self.due = site, list(snapshot or ()), due

    def on_batch(self, values):
        self.seen += values
        return [f"{self.site}:{v}" for v in values], StatefulBatchLogic.RETAIN

    def on_notify(self):
        self.due = None
        return [f"{self.site}:notified"], StatefulBatchLogic.RETAIN

    def on_eof(self):
        return [f"{self.site}:eof"], StatefulBatchLogic.DISCARD

    def notify_at(self):
        return self.due

    def snapshot(self):
        return tuple(self.seen)


def test_a_shard_calls_each_site_as_its_own_key_would_be_called():
    past = datetime(2000, 1, 1, tzinfo=timezone.utc)
    later = datetime(2100, 1, 1, tzinfo=timezone.utc)
    due = {"a": past, "b": later}
    logic = ShardLogic(lambda site, snapshot: _Logic(site, snapshot, due.get(site)), 4)
    out, discard = logic.on_batch([[("a", 1), ("b", 2)], [("a", 3)], [("c", 4)]])
    assert out == [[("a", "a:1"), ("a", "a:3"), ("b", "b:2"), ("c", "c:4")]] and discard is False
    assert logic.sites["a"].seen == [1, 3]  # one call with its values in order
    assert logic.notify_at() == past  # the earliest of its sites'
    assert logic.on_notify()[0] == [[("a", "a:notified")]]  # only the site whose time has come
    assert logic.notify_at() == later
    snapshot = logic.snapshot()
    assert is_plain(snapshot)
    resumed = ShardLogic(lambda site, snapshot: _Logic(site, snapshot), 4, snapshot)
    assert {site: resumed.sites[site].seen for site in resumed.sites} == {"a": [1, 3], "b": [2], "c": [4]}
    [out], discard = resumed.on_eof()
    assert sorted(out) == [("a", "a:eof"), ("b", "b:eof"), ("c", "c:eof")]
    assert discard is True and resumed.sites == {}  # every site discarded: so is the shard


def test_a_recovery_store_of_another_layout_is_refused_with_what_to_do(settings):
    spec = window_spec(settings)
    logic = ShardLogic(lambda site, snapshot: _WindowLogic(spec, snapshot, lambda: 0), 4)
    logic.on_batch([[("store-0001", [])]])
    snapshot = logic.snapshot()
    with pytest.raises(ValueError, match=r"site_shards = 4, not 8: set it back, or start .* fresh --recovery-dir"):
        ShardLogic(lambda site, snapshot: _WindowLogic(spec, snapshot, lambda: 0), 8, snapshot)
    per_site = snapshot[2]["store-0001"]  # what a store written before the shards holds under a site's key
    with pytest.raises(ValueError, match="written before the site shards"):
        ShardLogic(lambda site, snapshot: _WindowLogic(spec, snapshot, lambda: 0), 4, per_site)
