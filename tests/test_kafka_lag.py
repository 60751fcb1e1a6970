"""Lag you can monitor (issue #15, item 5), on a real broker: after each epoch `boucle run --source kafka`
commits the feedback partitions' next offsets under `kafka.group_id`, for lag tools only; a restart still
resumes from the recovery store, whatever the group's committed offsets say."""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from kafka_broker import consume_all
from test_kafka_flow import boucle, boucle_env, new_topics

from boucle.sinks.kafka import produce_messages, producer_config
from boucle.sources.simulator import Simulator

PARTITIONS = 3


def _group_offsets(broker, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of every partition of ``topic`` (negative: none committed)."""
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    [future] = broker.admin.list_consumer_group_offsets([request]).values()
    try:
        answer = future.result(15)
    except KafkaException as exc:  # a broker without group offsets: say so rather than fail
        pytest.skip(f"the test broker does not serve OffsetFetch for consumer groups: {exc}")
    return {tp.partition: tp.offset for tp in answer.topic_partitions}


def _set_group_offsets(broker, group: str, topic: str, offset: int) -> None:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p, offset) for p in range(PARTITIONS)])
    [future] = broker.admin.alter_consumer_group_offsets([request]).values()
    future.result(15)


def _ends(broker, topic: str) -> dict[int, int]:
    """Each partition's next offset (last offset read + 1): Tansu's ListOffsets(latest) ends inside the
    last record batch, so the end is counted from the messages themselves."""
    last = Counter()
    for msg in consume_all(broker.bootstrap, topic):
        last[msg.partition()] = max(last[msg.partition()], msg.offset() + 1)
    return {p: last[p] for p in range(PARTITIONS)}


def _events_read(stdout: str) -> int:
    [n] = re.findall(r"events read[^\d\n]*([\d,]+)", stdout)
    return int(n.replace(",", ""))


@pytest.fixture
def lag_env(kafka_broker, tmp_path):
    topics = new_topics(kafka_broker, PARTITIONS)
    group = f"boucle-lag-{uuid.uuid4().hex[:8]}"
    env = boucle_env(tmp_path, kafka_broker.bootstrap, topics, BOUCLE_KAFKA__GROUP_ID=group)
    run = ["run", "--source", "kafka", "--to-end", "--no-progress", "--epoch-interval", "0.5",
           "--recovery-dir", str(tmp_path / "recovery")]
    return topics, group, env, run


def test_committed_offsets_follow_the_run_and_a_restart_resumes_from_the_recovery_store(
    kafka_broker, settings, lag_env
):
    topics, group, env, run = lag_env
    messages = list(Simulator(settings, days=1).messages())
    first, second = messages[: len(messages) // 2], messages[len(messages) // 2:]
    config = producer_config([kafka_broker.bootstrap], None)

    produce_messages(first, config, topics["feedback"])
    out = boucle(*run, env=env).stdout
    assert f"offsets committed under group {group!r}" in out
    assert _events_read(out) == len(first)
    ends = _ends(kafka_broker, topics["feedback"])
    assert sum(ends.values()) == len(first) and all(ends.values())
    assert _group_offsets(kafka_broker, group, topics["feedback"]) == ends  # lag 0 after a run to the end

    # Rewind the group to the beginning: a restart that resumed from Kafka would read everything again.
    _set_group_offsets(kafka_broker, group, topics["feedback"], 0)
    produce_messages(second, config, topics["feedback"])
    out = boucle(*run, env=env).stdout
    assert _events_read(out) == len(second)  # from the recovery store: only what came after
    ends = _ends(kafka_broker, topics["feedback"])
    assert sum(ends.values()) == len(messages)
    assert _group_offsets(kafka_broker, group, topics["feedback"]) == ends


def test_commit_offsets_off_commits_nothing(kafka_broker, settings, lag_env):
    topics, group, env, run = lag_env
    messages = list(Simulator(settings, days=1).messages())[:300]
    produce_messages(messages, producer_config([kafka_broker.bootstrap], None), topics["feedback"])
    out = boucle(*run, env={**env, "BOUCLE_KAFKA__COMMIT_OFFSETS": "false"}).stdout
    assert _events_read(out) == len(messages) and "offsets committed" not in out
    assert all(offset < 0 for offset in _group_offsets(kafka_broker, group, topics["feedback"]).values())


def test_failing_commits_are_counted_and_logged_and_the_flow_reads_everything(kafka_broker, settings,
                                                                              monkeypatch, caplog):
    """Every commit refused: the source still reads every message; the failures are counted and logged."""
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, run_main

    from boucle.config.settings import Kafka
    from boucle.sources import kafka_offsets
    from boucle.sources.kafka_source import KafkaFeedbackSource

    def refuse(self, *args, **kwargs):
        raise KafkaException("commit refused (test)")

    monkeypatch.setattr(kafka_offsets.AdminClient, "alter_consumer_group_offsets", refuse)
    topics = new_topics(kafka_broker, PARTITIONS)
    messages = list(Simulator(settings, days=1).messages())[:500]
    produce_messages(messages, producer_config([kafka_broker.bootstrap], None), topics["feedback"])
    kafka = Kafka(brokers=kafka_broker.bootstrap, feedback_topic=topics["feedback"], timeouts={"report_every": "17s"})
    source = KafkaFeedbackSource(kafka, tail=False, commit_offsets=True)
    flow, out = Dataflow("lag"), []
    op.output("out", op.flat_map("each", op.input("in", flow, source), lambda m: [m]), TestingSink(out))
    with caplog.at_level("WARNING", logger="boucle.kafka"):
        run_main(flow)
    assert len(out) == len(messages)
    assert source.committer.failed >= PARTITIONS and source.committer.committed == 0
    assert any("lag monitoring only, reading goes on" in r.getMessage() for r in caplog.records)


def test_unanswered_commits_are_not_piled_up_and_count_as_failed_at_close(monkeypatch):
    """Brokers away: one commit per partition in flight (later epochs skip), unanswered ones fail at close."""
    from kafka_broker import _free_port

    from boucle.config.settings import Kafka
    from boucle.sources import kafka_offsets

    monkeypatch.setattr(kafka_offsets, "FLUSH_S", 0.2)
    committer = kafka_offsets.OffsetCommitter(Kafka(brokers=f"127.0.0.1:{_free_port()}"), "boucle")
    committer.acquire()
    committer.commit("feedback", 0, -2)  # nothing read yet: not sent
    committer.commit("feedback", 0, 10)
    committer.commit("feedback", 0, 20)  # the first is unanswered: skipped
    committer.commit("feedback", 1, 5)
    committer.release()
    assert committer.stats() == {"group_id": "boucle", "committed": 0, "failed": 2, "skipped": 1}
