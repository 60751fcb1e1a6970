"""The `boucle` CLI as a user drives it: simulate to a file, replay it, query the warehouse."""

from __future__ import annotations

import json

import orjson
import pytest
from typer.testing import CliRunner

from boucle.flows.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result


@pytest.mark.parametrize("command", [[], ["run"], ["replay"], ["simulate"], ["query"], ["db", "init"]])
def test_every_command_has_help(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.output


def test_simulate_replay_query(workspace):
    events, labels = workspace / "feedback.jsonl", workspace / "labels.jsonl"
    result = invoke("simulate", "--out", str(events), "--labels", str(labels), "--days", "1", "--seed", "3")
    assert result.exit_code == 0, result.output
    lines = events.read_bytes().splitlines()
    truth = [orjson.loads(line) for line in labels.read_bytes().splitlines()]
    malformed = sum(1 for label in truth if label["type"] == "malformed")
    assert malformed > 0 and len(lines) > 100

    result = invoke("replay", str(events), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "Run summary" in result.output and "dead-lettered" in result.output

    result = invoke("query", "SELECT count() AS n FROM feedback", "--format", "json")
    assert json.loads(result.output) == {"n": len(lines) - malformed}
    result = invoke("query", "SELECT count() AS n FROM dead_letters", "--format", "csv")
    assert result.output.splitlines() == ["n", str(malformed)]
    alerts = (workspace / "alerts.jsonl").read_bytes().splitlines()
    kinds = {orjson.loads(a)["kind"] for a in alerts}
    assert "hot" in kinds and kinds <= {"hot", "hot_digest"}  # a busy site-day's overflow: one digest


def test_bad_query_is_one_clear_line(workspace):
    assert invoke("db", "init").exit_code == 0
    result = invoke("query", "SELECT nope FROM feedback")
    assert result.exit_code == 1
    assert "query refused" in result.output and "Traceback" not in result.output


def test_bad_config_fails_at_start_with_the_key_path(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[windows]\nallowed_lateness = "soon"\n')
    result = invoke("--config", str(bad), "run", "--no-progress")
    assert result.exit_code == 2
    assert "windows.allowed_lateness" in result.output


def test_missing_replay_file(workspace):
    result = invoke("replay", str(workspace / "nope.jsonl"))
    assert result.exit_code == 2 and "no such file" in result.output
