"""Every benchmark script teaches its use: ``python benchmarks/<name>.py --help`` answers, and no
script's name shadows one of the package's modules when run from its folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))
# The package is imported as boucle.* only (its folders' bare names, e.g. `detectors`, never are), so a
# script may share a folder's name (benchmarks/detectors.py); it must not shadow boucle or a dependency.
PACKAGES = {"boucle", "bytewax", "river", "numpy", "orjson", "msgspec", "rich", "pydantic", "confluent_kafka"}


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 5


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help(script):
    assert script.stem not in PACKAGES
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:")
