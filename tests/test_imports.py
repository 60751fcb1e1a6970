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
