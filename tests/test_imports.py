"""`boucle import`: each shipped layout turns its example export into the golden contract events."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from boucle.flows.cli.app import app
from boucle.sources.imports import LAYOUTS_DIR

GOLDEN = Path(__file__).parent / "golden" / "imports"


@pytest.mark.parametrize("layout", ["generic", "qualtrics"])
def test_example_export_gives_the_golden_events_and_dead_letters_with_row_numbers(layout, tmp_path):
    out, dead = tmp_path / "events.jsonl", tmp_path / "dead.jsonl"
    result = CliRunner().invoke(app, ["import", str(LAYOUTS_DIR / f"{layout}_example.csv"), "-m", layout,
                                      "-o", str(out), "--dead-letters", str(dead), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == (GOLDEN / f"{layout}.jsonl").read_bytes()
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert len(letters) == 5 and all(d["offset"] > 1 and d["reason"] for d in letters)
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert any("csat" in e["scores"] for e in events)


def test_not_rated_answers_are_dropped_and_the_old_scale_is_rescaled(tmp_path):
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, ["import", str(LAYOUTS_DIR / "generic_example.csv"), "-m", "generic",
                                      "-o", str(out), "--dead-letters", str(tmp_path / "dead.jsonl"), "--no-progress"])
    assert result.exit_code == 0, result.output
    events = {(e["site_id"], e["occurred_at"][:10]): e for e in map(orjson.loads, out.read_bytes().splitlines())}
    # 28/02/2026: "N/A" recommend and waiting 0 are "not rated": those answers go, the response stays.
    thin = events["store-0043", "2026-02-28"]
    assert "nps" not in thin["scores"] and "waiting_time" not in thin["attributes"]
    # "overall" on 1-10 before 2026-03-01 (9 -> 5, 3 -> 2, 7 -> 4), on 1-5 from that day (5 stays 5).
    assert [events[k]["scores"]["csat"] for k in [("store-0001", "2026-01-15"), ("store-0002", "2026-02-03"),
                                                   ("store-0043", "2026-02-28"), ("store-0001", "2026-03-01")]] == [5, 2, 4, 5]
    # A date-only date is local noon of the site's zone (Europe/Paris by default): the same day in UTC.
    assert events["store-0001", "2026-01-15"]["occurred_at"] == "2026-01-15T11:00:00.000Z"


def test_an_import_replays_straight_into_the_warehouse(workspace):
    result = CliRunner().invoke(app, ["import", str(LAYOUTS_DIR / "generic_example.csv"), "-m", "generic",
                                      "--replay", "--no-progress"])
    assert result.exit_code == 0, result.output
    count = CliRunner().invoke(app, ["query", "--format", "csv", "SELECT count() FROM feedback FINAL"])
    assert count.exit_code == 0 and count.output.strip().splitlines()[-1] == "6", count.output
