"""Read paths never write (issue #13): `report`, `query` and `cases` work for a read-only user,
`query` runs one statement and writes only with --write, `db migrate` is the only schema writer.

A warehouse is filled once by a real `boucle run` (embedded chDB). The read-only user is a
ClickHouse session with ``readonly = 1`` — what a BI user's profile gives: every client the
commands open gets it, so any DDL or insert they issued would fail.
"""

from __future__ import annotations

import json

import clickhouse_connect
import pytest
from typer.testing import CliRunner

from boucle.flows.cli.app import app
from boucle.sinks.clickhouse.client import close_all
from boucle.sinks.clickhouse.query import QueryError, single_statement
from boucle.sinks.clickhouse.schema import RETENTION_COLUMNS

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Environment of a workspace whose warehouse holds one simulated day (read it, do not write)."""
    tmp = tmp_path_factory.mktemp("readonly")
    env = {
        "BOUCLE_WAREHOUSE__PATH": str(tmp / "chdb"),
        "BOUCLE_OUTPUTS__ALERTS_JSONL": str(tmp / "alerts.jsonl"),
        "BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL": str(tmp / "dead.jsonl"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.setenv("BOUCLE_WAREHOUSE__RETENTION", "400d")
        result = invoke("run", "--days", "1", "--no-progress")
        assert result.exit_code == 0, result.output
    close_all()
    yield env
    close_all()


@pytest.fixture
def env(warehouse, monkeypatch):
    for key, value in warehouse.items():
        monkeypatch.setenv(key, value)
    yield warehouse
    close_all()


@pytest.fixture
def read_only_user(env, monkeypatch):
    """Every ClickHouse session opened from now on has readonly = 1."""
    close_all()
    real = clickhouse_connect.get_client

    def get_client(*args, **kwargs):
        return real(*args, **{**kwargs, "settings": {**(kwargs.get("settings") or {}), "readonly": 1}})

    monkeypatch.setattr(clickhouse_connect, "get_client", get_client)
    yield env
    close_all()


def ttls(env) -> dict[str, bool]:
    result = invoke("query", "SELECT name, engine_full LIKE '% TTL %' AS ttl FROM system.tables"
                    " WHERE database = 'boucle'", "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["name"]: bool(row["ttl"]) for row in map(json.loads, result.output.splitlines())}


@pytest.mark.parametrize("command", [
    ["report", "--out", "{tmp}/report.html"],
    ["query", "SELECT count() AS n FROM feedback"],
    ["cases", "summary"],
    ["cases", "non-respondents", "--after", "1d"],
    ["cases", "promoters"],
    ["cases", "search", "attente"],
])
def test_read_commands_work_for_a_read_only_user(read_only_user, tmp_path, command):
    result = invoke(*(arg.format(tmp=tmp_path) for arg in command))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_the_read_only_user_cannot_write_so_the_test_above_can_fail(read_only_user):
    result = invoke("query", "--write", "INSERT INTO dead_letters (reason_code) VALUES ('x')")
    assert result.exit_code == 1 and "READONLY" in result.output
    result = invoke("db", "migrate")
    assert result.exit_code == 1 and "READONLY" in result.output


def test_a_report_without_retention_keeps_the_production_ttl(env, tmp_path, monkeypatch):
    assert all(ttls(env)[table] for table in RETENTION_COLUMNS)  # set by the fixture's run (400d)
    monkeypatch.delenv("BOUCLE_WAREHOUSE__RETENTION", raising=False)
    assert invoke("report", "--out", str(tmp_path / "r.html")).exit_code == 0
    assert invoke("cases", "summary").exit_code == 0
    assert all(ttls(env)[table] for table in RETENTION_COLUMNS)


def test_query_runs_one_statement(env):
    result = invoke("query", "SELECT 1; DROP TABLE dead_letters")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "query refused: one statement at a time: a second one starts at character 11 ('DROP TABLE dead_letters')"]
    assert "dead_letters" in ttls(env)


@pytest.mark.parametrize("sql", [
    "INSERT INTO dead_letters (reason_code) VALUES ('x')",
    "DROP TABLE dead_letters",
    "ALTER TABLE dead_letters DELETE WHERE 1",
    "CREATE TABLE scratch (x UInt8) ENGINE = Memory",
    "TRUNCATE TABLE dead_letters",
    "OPTIMIZE TABLE dead_letters FINAL",
    "SELECT 1 SETTINGS readonly = 0",
])
def test_query_refuses_writes_without_write(env, sql):
    before = invoke("query", "SELECT count() FROM dead_letters", "--format", "csv").output
    result = invoke("query", sql)
    assert result.exit_code == 1, result.output
    assert "READONLY" in result.output and "--write" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert invoke("query", "SELECT count() FROM dead_letters", "--format", "csv").output == before


def test_query_writes_with_write(env):
    for sql in ("CREATE TABLE scratch (x UInt8) ENGINE = MergeTree ORDER BY x",
                "INSERT INTO scratch VALUES (1), (2)",
                "ALTER TABLE scratch DELETE WHERE x = 1 SETTINGS mutations_sync = 1"):
        result = invoke("query", "--write", sql)
        assert result.exit_code == 0, (sql, result.output)
    assert invoke("query", "SELECT sum(x) AS s FROM scratch", "--format", "csv").output.split() == ["s", "2"]
    assert invoke("query", "--write", "DROP TABLE scratch").exit_code == 0
    assert "scratch" not in ttls(env)


@pytest.mark.parametrize("sql,expected", [
    ("SELECT ';' AS s", ";"),
    ("SELECT 'a;b' AS s -- a comment; with a semicolon", "a;b"),
    ("SELECT /* ; DROP TABLE feedback; */ 'x' AS s;", "x"),
    ("SELECT 'it''s; fine' AS s;  -- trailing", "it's; fine"),
    ("SELECT `s` FROM (SELECT 'q' AS `s`) # ; comment", "q"),
])
def test_a_semicolon_in_a_literal_or_comment_is_accepted(env, sql, expected):
    result = invoke("query", sql, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"s": expected}


@pytest.mark.parametrize("sql", [
    "SELECT 1; SELECT 2",
    "SELECT 1;\nINSERT INTO t VALUES (1)",
    "SELECT ';' ; DROP TABLE t",
    "SELECT 1 /* ; */ ; ALTER TABLE t DELETE WHERE 1",
    "SELECT 1 -- ;\n; DROP TABLE t",
    "SELECT $$;$$; DROP TABLE t",
    "SELECT 1;;; 'x'",
])
def test_single_statement_refuses_a_second_statement(sql):
    with pytest.raises(QueryError, match="one statement at a time"):
        single_statement(sql)


@pytest.mark.parametrize("sql,statement", [
    ("SELECT 1", "SELECT 1"),
    ("SELECT 1;", "SELECT 1"),
    ("SELECT 1; -- done\n;", "SELECT 1"),
    ("SELECT \"a;b\", `c;d`, $t$;$t$ FROM x /* /* ; */ ; */", "SELECT \"a;b\", `c;d`, $t$;$t$ FROM x /* /* ; */ ; */"),
    ("SELECT 'a\\';b'", "SELECT 'a\\';b'"),
])
def test_single_statement_keeps_one_statement(sql, statement):
    assert single_statement(sql) == statement


def test_run_on_a_warehouse_it_may_not_migrate_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", str(tmp_path / "chdb"))
    monkeypatch.setenv("BOUCLE_OUTPUTS__ALERTS_JSONL", str(tmp_path / "alerts.jsonl"))
    monkeypatch.setenv("BOUCLE_OUTPUTS__DEAD_LETTERS_JSONL", str(tmp_path / "dead.jsonl"))
    monkeypatch.setenv("BOUCLE_WAREHOUSE__AUTO_MIGRATE", "false")
    try:
        result = invoke("run", "--days", "0.05", "--no-progress")
        assert result.exit_code == 1
        last = result.output.strip().splitlines()[-1]
        assert "has no Boucle schema" in last and "run `boucle db migrate`" in last, result.output
        assert invoke("db", "migrate").exit_code == 0
        result = invoke("run", "--days", "0.05", "--no-progress")
        assert result.exit_code == 0, result.output
    finally:
        close_all()


def test_a_read_command_does_not_create_a_missing_warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", str(tmp_path / "nothing" / "chdb"))
    for command in (["query", "SELECT 1"], ["cases", "promoters"], ["report", "--out", str(tmp_path / "r.html")]):
        result = invoke(*command)
        assert result.exit_code == 1
        assert result.output.strip().splitlines() == [
            f"warehouse error: no warehouse at {tmp_path / 'nothing' / 'chdb'} yet:"
            " run `boucle run` or `boucle db migrate` first"]
    assert not (tmp_path / "nothing").exists()


def test_read_commands_on_a_warehouse_without_the_schema_say_to_migrate(tmp_path, monkeypatch):
    import clickhouse_connect as cc

    path = tmp_path / "chdb"
    monkeypatch.setenv("BOUCLE_WAREHOUSE__PATH", str(path))
    close_all()
    cc.get_client(interface="chdb", path=str(path)).close()  # a chDB directory, no Boucle schema
    try:
        for command in (["cases", "summary"], ["report", "--out", str(tmp_path / "r.html")]):
            result = invoke(*command)
            assert result.exit_code == 1
            assert result.output.strip().splitlines() == [
                f"warehouse error: the warehouse {path} has no Boucle schema in database boucle:"
                " run `boucle db migrate` first"]
    finally:
        close_all()
