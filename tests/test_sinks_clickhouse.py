"""The ClickHouse sink against real embedded chDB (no mocks).

chDB opens one data path per process: this module keeps one warehouse for all its tests and
closes it (``close_all``) at the end, so other modules may open their own path afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import datetime, timezone

import pytest
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.run import cli_main
from bytewax.testing import TestingSource, run_main
from clickhouse_connect.driver.exceptions import OperationalError

from boucle.config.settings import Warehouse
from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import (
    WarehouseError,
    client_lock,
    close_all,
    connect,
    with_retries,
)
from boucle.sinks.clickhouse.query import QueryError, optimize_final, run_query
from boucle.sinks.clickhouse.schema import init_schema, table_columns, warehouse_tables
from boucle.sinks.clickhouse.sink import ClickHouseSink
from boucle.sinks.clickhouse.writer import TableWriter

# ---- fixtures (sinks) -------------------------------------------------------------------------

DB = "boucle"
T0 = 1_790_000_000_123  # 2026-09-21T...Z, epoch ms


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    return Warehouse(path=str(tmp_path_factory.mktemp("sinks") / "nested" / "wh.chdb"), database=DB)


@pytest.fixture(scope="module")
def client(warehouse):
    client = connect(warehouse)
    init_schema(client, DB)
    yield client
    close_all()


@pytest.fixture
def ch(client):
    """The shared client, with every table empty."""
    for table in warehouse_tables():
        client.command(f"TRUNCATE TABLE {DB}.{table}")
    return client


def count(client, table: str, final: bool = False) -> int:
    return client.query(f"SELECT count() FROM {DB}.{table}{' FINAL' if final else ''}").result_rows[0][0]


FEEDBACK_COLS = (
    "event_id", "occurred_at", "received_at", "site_id", "region", "channel", "journey_stage",
    "scores", "attributes", "comment", "language", "customer_id", "consent_contact", "late", "origin",
)


def feedback_rows(n: int, prefix: str = "ev") -> list[tuple]:
    return [
        (
            f"{prefix}-{i}", T0 + i, T0 + i + 50, f"store-{i % 7:04d}", "north", "web", "purchase",
            {"nps": i % 11, "csat": 1 + i % 5}, {"waiting_time": 1 + i % 5}, "très bien", "fr",
            f"cust-{i}", i % 2, 0, f"simulator:0:{i}",
        )
        for i in range(n)
    ]


def feedback(n: int, prefix: str = "ev") -> TableBatch:
    return TableBatch("feedback", FEEDBACK_COLS, feedback_rows(n, prefix))


# ---- schema -----------------------------------------------------------------------------------

def test_init_schema_twice_is_a_no_op(ch):
    TableWriter(ch, DB).insert(feedback(3))
    before = ch.query(
        "SELECT name, create_table_query, metadata_modification_time FROM system.tables"
        " WHERE database = {db:String} ORDER BY name", parameters={"db": DB}
    ).result_rows
    init_schema(ch, DB)
    init_schema(ch, DB)
    after = ch.query(
        "SELECT name, create_table_query, metadata_modification_time FROM system.tables"
        " WHERE database = {db:String} ORDER BY name", parameters={"db": DB}
    ).result_rows
    assert after == before
    tables = {name for name, query, _ in after if not query.startswith(("CREATE VIEW", "CREATE MATERIALIZED VIEW"))}
    assert tables == set(warehouse_tables()) | {"schema_migrations"}  # the one list is every table
    assert count(ch, "feedback") == 3
    assert ("raw", "String") in table_columns(ch, DB, "dead_letters")


# ---- round trips ------------------------------------------------------------------------------

def test_feedback_round_trip_types(ch):
    rows = feedback_rows(2)
    assert TableWriter(ch, DB).insert(TableBatch("feedback", FEEDBACK_COLS, rows)) == 2
    result = ch.query(
        f"SELECT event_id, toUnixTimestamp64Milli(occurred_at), occurred_at, scores, attributes,"
        f" consent_contact, comment, toTypeName(site_id) FROM {DB}.feedback ORDER BY event_id"
    ).result_rows
    first = result[0]
    assert first[0] == "ev-0" and first[1] == T0
    assert first[2] == datetime.fromtimestamp(T0 / 1000, tz=timezone.utc)
    assert first[3] == {"nps": 0, "csat": 1} and first[4] == {"waiting_time": 1}
    assert (first[5], first[6], first[7]) == (0, "très bien", "LowCardinality(String)")
    assert result[1][3] == {"nps": 1, "csat": 2}


def test_feedback_rows_store_the_validated_fields(ch):
    """ClickHouse unpacks channel, ratings and language from the row's JSON: what is stored is what
    the decoder validated, even for a message whose keys are duplicated (read last-wins by the
    decoder; ClickHouse reading the message itself would take the first, unvalidated value)."""
    from boucle.config.loader import settings_from_dict
    from boucle.flows.rows import feedback_rows as rows_of
    from boucle.operators.decode import Decoder
    from boucle.operators.windows import WindowedBatch
    from boucle.sources.message import RawMessage

    settings = settings_from_dict({
        "regions": [{"id": "north"}], "sites": [{"id": "s1", "region": "north"}],
        "attributes": [{"name": "waiting_time"}]})
    messages = [
        b'{"event_id": "e1", "occurred_at": "2026-11-22T11:31:05.120+01:00", "site_id": "s1", "channel": "web",'
        b' "journey_stage": null, "scores": {"nps": 3}, "attributes": {"waiting_time": 1},'
        b' "comment": "call 06 12 34 56 78", "language": "fr", "customer": {"id": 42, "consent_contact": true}}',
        b'{"event_id": "e2", "occurred_at": "2026-11-22T10:31:05.120Z", "site_id": "s1", "channel": "evil",'
        b' "channel": "web", "scores": {"nps": 99}, "scores": {"nps": 3, "nps": 3}, "attributes": {"waiting_time": 1},'
        b' "comment": "call 06 12 34 56 78", "language": "fr", "customer": {"id": "42", "consent_contact": true}}',
    ]
    decoder = Decoder(settings)
    events = [decoder.decode(RawMessage(raw, "test", 0, 7)) for raw in messages]
    writer = TableWriter(ch, DB)
    for batch in rows_of(WindowedBatch(events), {"s1": "north"}):
        writer.insert(batch)
    stored = ch.query(
        f"SELECT event_id, toUnixTimestamp64Milli(occurred_at), site_id, region, channel, journey_stage, scores,"
        f" attributes, comment, language, customer_id, consent_contact, origin FROM {DB}.feedback ORDER BY event_id"
    ).result_rows
    expected = (1795343465120, "s1", "north", "web", "", {"nps": 3}, {"waiting_time": 1}, "call [phone]", "fr",
                "42", 1, "test:0:7")
    assert [row[1:] for row in stored] == [expected, expected]


def test_attribute_scores_round_trip(ch):
    cols = ("site_id", "region", "attribute", "window_length", "window_start", "window_end", "n",
            "sum", "mean", "bottom_n", "bottom_share", "top_n", "top_share")
    row = ("store-0001", "north", "nps", 3600, T0, T0 + 3_600_000, 4, 2**40, 7.25, 1, 0.25, 3, 0.75)
    TableWriter(ch, DB).insert(TableBatch("attribute_scores", cols, [row]))
    got = ch.query(
        f"SELECT site_id, region, attribute, window_length, toUnixTimestamp64Milli(window_start),"
        f" toUnixTimestamp64Milli(window_end), n, sum, mean, bottom_n, bottom_share, top_n,"
        f" top_share FROM {DB}.attribute_scores"
    ).result_rows
    assert got == [row]


def test_alerts_round_trip_with_array(ch):
    cols = ("alert_id", "kind", "status", "severity", "site_id", "region", "attribute", "triggers",
            "message", "owner", "event_time", "detected_at", "payload")
    rows = [
        ("a1", "attribute", "open", "high", "store-0001", "north", "waiting_time",
         ["trend", "peer"], "Waiting time is dropping", "alice", T0, T0 + 5, '{"alert_id":"a1"}'),
        ("a2", "hot", "open", "medium", "store-0002", "north", "", [], "Détracteur", "", T0, T0, "{}"),
    ]
    TableWriter(ch, DB).insert(TableBatch("alerts", cols, rows))
    got = ch.query(
        f"SELECT alert_id, triggers, message, toUnixTimestamp64Milli(detected_at)"
        f" FROM {DB}.alerts ORDER BY alert_id"
    ).result_rows
    assert got == [("a1", ["trend", "peer"], "Waiting time is dropping", T0 + 5),
                   ("a2", [], "Détracteur", T0)]


def test_dead_letters_raw_bytes_are_byte_exact(ch):
    raws = [b"\xff\xfe{not json", b"\x00\x01\x80 \xc3(", "plain text é".encode(), b""]
    cols = ("origin", "partition", "offset", "received_at", "reason_code", "reason", "raw")
    rows = [("simulator", 0, i, T0, "bad_json", "invalid JSON", raw) for i, raw in enumerate(raws)]
    rows.append(("kafka:boucle.feedback", 3, 2**40, T0, "bad_utf8", "str reason", "un texte"))
    TableWriter(ch, DB).insert(TableBatch("dead_letters", cols, rows))
    got = ch.query(
        f"SELECT offset, hex(raw), partition FROM {DB}.dead_letters ORDER BY origin, partition, offset"
    ).result_rows
    assert [bytes.fromhex(h) for _, h, _ in got] == ["un texte".encode()] + raws
    assert got[0][0] == 2**40 and got[0][2] == 3


def test_missing_columns_take_defaults_and_unknown_columns_fail(ch):
    writer = TableWriter(ch, DB)
    writer.insert(TableBatch("feedback", ("event_id", "occurred_at"), [("only-two", T0)]))
    assert ch.query(f"SELECT scores, late FROM {DB}.feedback").result_rows == [({}, 0)]
    with pytest.raises(ValueError, match="no column nope"):
        writer.insert(TableBatch("feedback", ("event_id", "nope"), [("x", 1)]))
    with pytest.raises(ValueError, match=r"feedback\.late"):
        writer.insert(TableBatch("feedback", ("event_id", "late"), [("x", "not a number")]))
    assert writer.insert(TableBatch("feedback", FEEDBACK_COLS, [])) == 0


# ---- idempotence ------------------------------------------------------------------------------

def test_same_batch_twice_leaves_the_same_rows(ch):
    writer = TableWriter(ch, DB)
    batch = feedback(500)
    writer.insert(batch)
    first = ch.query(f"SELECT * FROM {DB}.feedback FINAL ORDER BY event_id").result_rows
    writer.insert(batch)  # a replay of the same block: dropped by the deduplication window
    assert count(ch, "feedback") == 500
    assert ch.query(f"SELECT * FROM {DB}.feedback FINAL ORDER BY event_id").result_rows == first


def test_replay_in_other_blocks_collapses_with_final_and_optimize(ch):
    writer = TableWriter(ch, DB)
    rows = feedback_rows(300)
    writer.insert(TableBatch("feedback", FEEDBACK_COLS, rows))
    writer.insert(TableBatch("feedback", FEEDBACK_COLS, rows[:100]))  # re-batched replay
    writer.insert(TableBatch("feedback", FEEDBACK_COLS, rows[100:150] + rows[:10]))
    assert count(ch, "feedback", final=True) == 300
    optimize_final(ch, DB)
    assert count(ch, "feedback") == 300


# ---- concurrency ------------------------------------------------------------------------------

def test_two_threads_share_one_client(ch, warehouse):
    clients, errors = [], []

    def work(prefix: str) -> None:
        try:
            client = connect(warehouse)
            clients.append(client)
            writer = TableWriter(client, DB)
            for k in range(5):
                writer.insert(feedback(400, f"{prefix}{k}"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert clients[0] is clients[1] is ch
    assert client_lock(clients[0]) is client_lock(ch)
    assert count(ch, "feedback") == 2 * 5 * 400


# ---- the bytewax sink -------------------------------------------------------------------------

def test_clickhouse_sink_writes_every_row(ch, warehouse):
    dl_cols = ("origin", "partition", "offset", "received_at", "reason_code", "reason", "raw")
    items = [
        feedback(1000, "x"),
        TableBatch("dead_letters", dl_cols, [("sim", 0, 1, T0, "bad_json", "r", b"\xff")]),
        feedback(250, "y"),
        TableBatch("feedback", FEEDBACK_COLS, []),
        feedback(10, "z"),
    ]
    sink = ClickHouseSink(warehouse)
    flow = Dataflow("sink_test")
    op.output("warehouse", op.input("in", flow, TestingSource(items, batch_size=2)), sink)
    run_main(flow)
    assert count(ch, "feedback") == 1260
    assert count(ch, "dead_letters") == 1
    assert sink.rows_written == {"feedback": 1260, "dead_letters": 1}


def test_clickhouse_sink_with_two_worker_threads(ch, warehouse):
    sink = ClickHouseSink(warehouse)
    flow = Dataflow("sink_two_workers")
    batches = op.input("in", flow, TestingSource([feedback(200, f"w{k}") for k in range(12)]))
    op.output("warehouse", op.redistribute("spread", batches), sink)
    cli_main(flow, workers_per_process=2)
    assert count(ch, "feedback") == 12 * 200
    assert sink.rows_written == {"feedback": 12 * 200}


def test_run_query_and_errors(ch):
    TableWriter(ch, DB).insert(feedback(3))
    names, rows = run_query(ch, "SELECT site_id, count() AS n FROM feedback GROUP BY site_id ORDER BY site_id")
    assert names == ("site_id", "n")
    assert rows == [("store-0000", 1), ("store-0001", 1), ("store-0002", 1)]
    with pytest.raises(QueryError, match="UNKNOWN_TABLE|does not exist"):
        run_query(ch, "SELECT * FROM no_such_table")


# ---- connection errors ------------------------------------------------------------------------

def test_unreachable_server_gives_a_clear_error():
    with pytest.raises(WarehouseError) as info:
        connect(Warehouse(url="http://127.0.0.1:1", password="s3cret"), max_retry_seconds=0.2)
    message = str(info.value)
    assert "http://127.0.0.1:1 is unreachable" in message and "connection refused" in message
    assert "\n" not in message and "s3cret" not in message


def test_chdb_path_locked_by_another_process(client, warehouse):
    code = (
        "import sys\n"
        "from boucle.config.settings import Warehouse\n"
        "from boucle.sinks.clickhouse.client import WarehouseError, connect\n"
        f"try:\n    connect(Warehouse(path={warehouse.path!r}))\n"
        "except WarehouseError as e:\n    print(e); sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 3, done.stderr[-2000:]
    message = done.stdout.strip()
    assert f"(pid {os.getpid()})" in message
    assert message.endswith("is in use by another process (pid %d); is a `boucle run` still going?"
                            % os.getpid())


def test_second_chdb_path_in_one_process_is_refused(client, tmp_path):
    with pytest.raises(WarehouseError, match="one data path per process"):
        connect(Warehouse(path=str(tmp_path / "other.chdb")))


def test_with_retries_backs_off_then_gives_up():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("Connection refused")
        return "ok"

    assert with_retries(flaky, max_retry_seconds=5, describe=str, first_delay=0) == "ok"
    assert len(calls) == 3

    def down() -> None:
        raise OperationalError("Connection refused")

    with pytest.raises(WarehouseError, match="gave up after"):
        with_retries(down, max_retry_seconds=0, first_delay=0,
                     describe=lambda exc, n, s: f"gave up after {n} attempts")

    def wrong() -> None:
        raise ValueError("not retryable")

    with pytest.raises(ValueError):
        with_retries(wrong, max_retry_seconds=5, describe=str, first_delay=0)
