"""The repository's text is whole: no merge-conflict markers left in tracked files."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)


def test_no_merge_conflict_markers():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        path = REPO / name
        if path.suffix in {".py", ".md", ".toml", ".yml", ".yaml", ".json", ".sql", ".txt", ".cfg"} or path.name == "Makefile":
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}" for m in MARKER.finditer(text)]
    assert found == []
