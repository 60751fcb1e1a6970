"""Backfills that cannot crash (issue #15, item 3), on real embedded chDB.

A ten-year history out of time order replays without error, every event is accounted for and
counted once in the windows (a repeated ``event_id`` included); an insert spanning more months than
``max_partitions_per_insert_block`` is split by partition; a permanent database error stops the run
at once with one line naming the table; a connection-level failure is retried.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import defaultdict

import orjson
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_stand_in import StandIn, serving
from typer.testing import CliRunner

from boucle.config.loader import SHIPPED_CONFIG, load_settings
from boucle.config.settings import Warehouse
from boucle.config.times import local_days
from boucle.flows.cli.app import app
from boucle.operators.windows import window_bounds
from boucle.sinks.batch import TableBatch
from boucle.sinks.clickhouse.client import WarehouseError, close_all, connect, is_retryable
from boucle.sinks.clickhouse.schema import init_schema
from boucle.sinks.clickhouse.writer import SchemaMismatch, TableWriter

runner = CliRunner()
YEAR_MS = 365 * 86_400_000
T0 = 1_262_304_000_000  # 2010-01-01T00:00:00Z


def invoke(*args: str):
    return runner.invoke(app, list(args))


def query(sql: str) -> list[list]:
    result = invoke("query", sql, "--format", "json")
    assert result.exit_code == 0, result.output
    return [list(row.values()) for row in map(orjson.loads, result.output.splitlines())]


# ---- a ten-year replay out of time order, through the CLI ------------------------------------

@pytest.fixture
def shuffled_history(workspace):
    """Ten simulated years of a thin `reviews` network, shuffled, with some events repeated."""
    path = workspace / "reviews.jsonl"
    result = invoke("simulate", "--profile", "reviews", "--sites", "12", "--days", "3650", "--seed", "5",
                    "--out", str(path))
    assert result.exit_code == 0, result.output
    lines = path.read_bytes().splitlines()
    rng = random.Random(5)
    events = [line for line in lines if _event_id(line)]
    repeated = rng.sample(events, 25)  # the same events again, elsewhere in the file
    lines += repeated
    rng.shuffle(lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, lines, {_event_id(line) for line in repeated}


def _event_id(line: bytes) -> str | None:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return event.get("event_id") if isinstance(event, dict) else None


def test_a_ten_year_backfill_out_of_order_is_sorted_and_counted_once(shuffled_history, settings):
    path, lines, repeated = shuffled_history
    result = invoke("replay", str(path), "--profile", "reviews", "--sites", "12", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "sorted by occurred_at before the run" in result.output  # it says which
    assert "sorted by occurred_at (was out of order)" in result.output

    (months,), = query("SELECT uniqExact(toYYYYMM(occurred_at)) FROM feedback")
    assert months > 100  # more than one insert block may span
    (stored, distinct, late), = query("SELECT count(), uniqExact(event_id), countIf(late) FROM feedback FINAL")
    dead = query("SELECT reason_code, count() FROM dead_letters FINAL GROUP BY reason_code")
    dead = dict(dead)
    assert stored == distinct and late == 0  # every accepted event once, none left out of the windows
    assert stored + sum(dead.values()) == len(lines)  # every line accounted for
    assert dead["duplicate_event"] == len(repeated)

    lengths = [int(length.total_seconds()) for length in settings.windows.lengths]
    reviews = _reviews_settings()
    bounds = {name: (scale.bottom_max, scale.top_min) for name, scale in reviews.questions().items()}
    zones = reviews.site_zones()
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for site, ts, ratings in query(
        "SELECT site_id, toUnixTimestamp64Milli(occurred_at), mapUpdate(scores, attributes) FROM feedback FINAL"
    ):
        for question, value in ratings.items():
            bottom_max, top_min = bounds[question]
            for length in lengths:
                # whole days start at the site's local midnight
                agg = expected[(site, question, length, window_bounds(length * 1000, ts, local_days(zones[site]))[0])]
                agg[0] += 1
                agg[1] += value
                agg[2] += value <= bottom_max
                agg[3] += value >= top_min
    got = {
        tuple(row[:4]): row[4:]
        for row in query("SELECT site_id, attribute, window_length, toUnixTimestamp64Milli(window_start),"
                         " n, sum, bottom_n, top_n FROM attribute_scores FINAL")
    }
    assert got == dict(expected)  # the windows of the sorted input; each repeated event counted once


def _reviews_settings():
    """The settings with the registry the replay decoded with (its scales and its sites' zones)."""
    from boucle.sources.simulator.networks import PROFILES, network_settings

    return network_settings(load_settings(SHIPPED_CONFIG), PROFILES["reviews"], 12)


# ---- the writer, on one warehouse for this module's tests -------------------------------------

@pytest.fixture
def client(tmp_path):
    warehouse = Warehouse(path=str(tmp_path / "wh.chdb"), database="boucle")
    client = connect(warehouse)
    init_schema(client, "boucle")
    yield client
    close_all()


FEEDBACK = ("event_id", "occurred_at", "site_id")


def test_an_insert_spanning_twelve_years_of_months_is_split_and_stays_idempotent(client):
    rows = [(f"e{i}", T0 + i * (12 * YEAR_MS // 20_000), f"s{i % 9}") for i in range(20_000)]
    random.Random(3).shuffle(rows)
    writer = TableWriter(client, "boucle", max_retry_seconds=5)
    batch = TableBatch("feedback", FEEDBACK, rows)
    assert writer.insert(batch) == len(rows)  # 145 months in one batch: more than the server's 100
    writer.insert(batch)  # at-least-once: the same batch again
    (months, stored, distinct), = client.query(
        "SELECT uniqExact(toYYYYMM(occurred_at)), count(), uniqExact(event_id) FROM boucle.feedback FINAL"
    ).result_rows
    assert months > 100 and stored == distinct == len(rows)
    # attribute_scores feeds two daily rollups through materialized views: they take the split blocks too
    scores = [(f"s{i % 9}", "north", "nps", 86_400, T0 + i * 86_400_000, 1, 9, 0, 1) for i in range(4_000)]
    writer.insert(TableBatch("attribute_scores", ("site_id", "region", "attribute", "window_length",
                                                  "window_start", "n", "sum", "bottom_n", "top_n"), scores))
    assert client.query("SELECT count() FROM boucle.site_attribute_daily FINAL").result_rows == [(4_000,)]


def test_a_table_whose_schema_does_not_match_fails_at_once_naming_it(client):
    client.command("ALTER TABLE boucle.feedback DROP COLUMN language")
    batch = TableBatch("feedback", ("event_id", "occurred_at", "language"), [("e", T0, "fr")])
    with pytest.raises(SchemaMismatch) as info:
        TableWriter(client, "boucle", max_retry_seconds=60).insert(batch)
    assert str(info.value) == "cannot insert into boucle.feedback: table feedback has no column language"


class Flaky:
    """The real client, whose first ``failures`` inserts fail as a lost connection does."""

    def __init__(self, client, failures: int, error: Exception):
        self._client, self.failures, self.error, self.calls = client, failures, error, 0

    def insert_arrow(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self._client.insert_arrow(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def test_a_connection_level_failure_is_retried_and_nothing_is_lost(client):
    flaky = Flaky(client, 3, OperationalError("HTTPConnectionPool: Connection refused"))
    rows = [(f"r{i}", T0 + i * 86_400_000 * 40, "s1") for i in range(300)]  # 120 months: two blocks
    writer = TableWriter(flaky, "boucle", max_retry_seconds=30)
    writer.insert(TableBatch("feedback", FEEDBACK, rows))
    assert flaky.calls >= 5  # three failures, then every block
    assert client.query("SELECT count() FROM boucle.feedback FINAL").result_rows == [(300,)]


def test_a_permanent_server_error_is_not_retried(client):
    refused = DatabaseError("Code: 60. DB::Exception: Table boucle.feedback does not exist. (UNKNOWN_TABLE)",
                            code=60, name="UNKNOWN_TABLE")
    flaky = Flaky(client, 10, refused)
    with pytest.raises(WarehouseError) as info:
        TableWriter(flaky, "boucle", max_retry_seconds=60).insert(TableBatch("feedback", FEEDBACK, [("e", T0, "s")]))
    assert str(info.value) == ("cannot insert into boucle.feedback: Table boucle.feedback does not exist"
                               " (UNKNOWN_TABLE) (not retried)")
    assert flaky.calls == 1


# ---- which errors are retried ----------------------------------------------------------------

PARTITIONS = "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)"
MERGES = "Code: 252. DB::Exception: Too many parts (3001). Merges are processing significantly slower than inserts"


@pytest.mark.parametrize("error,retried", [
    (OperationalError("Connection reset by peer"), True),
    (ConnectionRefusedError(111, "Connection refused"), True),
    (TimeoutError("timed out"), True),
    (DatabaseError("HTTP driver received HTTP status 502, server response: Bad Gateway"), True),
    (DatabaseError("Too many simultaneous queries", code=202), True),
    (DatabaseError(MERGES, code=252), True),  # the server pushing back on inserts
    (DatabaseError(PARTITIONS, code=252), False),
    (OperationalError(PARTITIONS, code=252), False),  # the driver retried it once already: still permanent
    (DatabaseError("HTTP driver received HTTP status 404"), False),
    (DatabaseError("Code: 62. DB::Exception: Syntax error", code=62), False),
    (DatabaseError("Code: 16. DB::Exception: No such column", code=16), False),
    (DatabaseError("Code: 516. DB::Exception: Authentication failed", code=516), False),
])
def test_only_connection_level_failures_are_retried(error, retried):
    assert is_retryable(error) is retried


def test_a_5xx_without_a_clickhouse_code_from_the_real_driver_is_retried():
    with serving((502, "Bad Gateway", "", b"<html>bad gateway</html>")) as server:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(WarehouseError, match="is unreachable"):
            connect(Warehouse(url=url, password="pw"), max_retry_seconds=0.5)
        assert len(StandIn.seen) >= 2
    close_all()


# ---- the command: one line, exit 1, no Rust panic ---------------------------------------------

def test_a_permanent_error_stops_a_replay_with_one_line_naming_the_table(workspace):
    events = workspace / "feedback.jsonl"
    assert invoke("simulate", "--out", str(events), "--days", "0.3", "--seed", "2").exit_code == 0
    assert invoke("db", "migrate").exit_code == 0
    assert invoke("query", "--write", "ALTER TABLE feedback DROP COLUMN consent_contact").exit_code == 0
    close_all()  # the command below runs in another process: chDB serves one process per path
    done = subprocess.run([sys.executable, "-m", "boucle.flows.cli", "replay", str(events), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["warehouse error: cannot insert into boucle.feedback: table feedback has no column consent_contact"], (
        done.stderr)


# ---- the input order: read as it is, or sorted ------------------------------------------------

def test_a_file_is_sorted_only_when_out_of_time_order_and_keeps_its_line_numbers(tmp_path):
    from datetime import timedelta

    from boucle.flows.file_input import file_input

    def line(day: int) -> bytes:
        return b'{"event_id": "e%d", "occurred_at": "2020-01-%02dT00:00:00Z"}' % (day, day)

    def read(given) -> list[tuple[bytes, int, str]]:
        part = given.source.build_part("in", given.source.list_parts()[0], None)
        try:
            return [(m.value, m.offset, m.origin) for m in part.next_batch()]
        finally:
            part.close()

    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join([line(1), line(3), b"", line(2), b"not json"]) + b"\n")
    with file_input(path, timedelta(days=2)) as given:  # within the lateness: as it is
        assert not given.sorted and given.total == 4 and given.order == "in time order: read as it is"
    with file_input(path, timedelta(hours=2), keep_order=True) as given:
        assert not given.sorted and "read as it is (--keep-order)" in given.order
        assert [offset for _, offset, _ in read(given)] == [0, 1, 3, 4]
    with file_input(path, timedelta(hours=2)) as given:
        assert given.sorted and given.order.startswith("out of time order (1 of 4 events more than")
        copy = given.source.path
        assert read(given) == [(b"not json", 4, str(path)), (line(1), 0, str(path)), (line(2), 3, str(path)),
                               (line(3), 1, str(path))]
    assert not copy.exists()  # the sorted copy is gone with the run
