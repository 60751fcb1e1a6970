"""The README's walkthrough (Bring your own data), run as written: registry check, import, replay, report, query.

The commands are read from the README's block, so the README cannot drift from what they do; they run
with the installed ``boucle`` in a temporary copy of ``examples/`` (what they write stays there).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
BOUCLE = Path(sys.executable).parent / "boucle"
MARKER = "<!-- walkthrough:"

# What the README says each step prints; the test checks the README says it and the command prints it.
EXPECTED = {
    "registry": ["registry ok: 10 sites in 3 regions"],
    "import": ["302 rows → 300 events → var/example/feedback.jsonl",
               "2 rows dead-lettered (unknown_site 1, bad_timestamp 1)"],
}


def walkthrough_commands() -> tuple[dict[str, str], list[list[str]]]:
    """The block after the marker: its exported variables, and its ``boucle`` commands in order."""
    block = README.split(MARKER, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    env, commands = {}, []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[0] == "make":
            continue  # the install: the test runs in the installed environment
        if words[0] == "export":
            env.update(word.split("=", 1) for word in words[1:])
        elif words[0] == "boucle":
            commands.append(words[1:])
        else:
            pytest.fail(f"the walkthrough has a line the test cannot run: {line}")
    env.pop("PATH", None)  # the test calls this environment's boucle by its path
    return env, commands


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(BOUCLE), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"boucle {shlex.join(args)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.skipif(not BOUCLE.exists(), reason="no boucle command installed beside this Python")
def test_the_walkthrough_runs_as_written_and_prints_what_the_readme_says(tmp_path):
    pytest.importorskip("plotly")
    for lines in EXPECTED.values():
        for line in lines:
            assert line in README, f"the README no longer says {line!r}"
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    own, commands = walkthrough_commands()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUCLE_")} | own | {"COLUMNS": "200"}
    assert [c[0] for c in commands] == ["registry", "import", "replay", "report", "query"]

    out = {c[0]: _run(c, tmp_path, env) for c in commands}

    for step, lines in EXPECTED.items():
        for line in lines:
            assert line in out[step], f"{step}: {line!r} not in\n{out[step]}"
    data = tmp_path / "var" / "example"
    dead = [json.loads(line) for line in (data / "import_dead_letters.jsonl").read_text().splitlines()]
    assert [(d["offset"], d["reason_code"]) for d in dead] == [(302, "unknown_site"), (303, "bad_timestamp")]
    assert re.search(r"accepted\s*│\s*300 ", out["replay"])
    alerts = [json.loads(line) for line in (data / "alerts.jsonl").read_text().splitlines()]
    assert [(a["kind"], a["site_id"], a["attribute"]) for a in alerts] == [("attribute", "brussels-01", "waiting_time")]
    assert " ".join(alerts[0]["message"].split()) in " ".join(README.split())  # quoted as the replay writes it
    for theme in ("waiting_time", "cleanliness", "staff_friendliness"):
        assert theme in out["replay"].split("Top comment themes", 1)[1]
    report = data / "report.html"
    page = report.read_text(encoding="utf-8")
    assert report.stat().st_size > 10_000 and "Bruxelles Louise" in page
    assert "9 sites · 144 responses · headline: CSAT" in page  # the header the README quotes
    assert re.search(r"│ 300\s*│", out["query"])
