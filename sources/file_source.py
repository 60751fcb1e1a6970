"""Replay a JSONL file (one raw message per line) into a dataflow, resumably.

Offsets are line numbers from 0; empty lines are skipped but still counted, so an offset always
points at the same line. The snapshot is ``(byte position, next line number)``.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "feedback.jsonl"
>>> _ = path.write_bytes(b'{"a": 1}\\n\\n{"a": 2}\\n')
>>> part = JsonlFileSource(path).build_part("in", str(path), None)
>>> [(m.value, m.offset) for m in part.next_batch()]
[(b'{"a": 1}', 0), (b'{"a": 2}', 2)]
>>> part.snapshot()
(19, 3)
>>> part.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from boucle.sources.message import RawMessage

__all__ = ["JsonlFileSource"]

FileState = tuple[int, int]  # (byte position of the next line, its line number)


class _JsonlPartition(StatefulSourcePartition[RawMessage, FileState]):
    def __init__(self, path: Path, state: FileState, batch_size: int) -> None:
        self._origin = str(path)
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._position, self._line = state
        self._file.seek(self._position)
        self._batch_size = batch_size

    def next_batch(self) -> list[RawMessage]:
        batch: list[RawMessage] = []
        readline = self._file.readline
        while len(batch) < self._batch_size:
            line = readline()
            if not line:
                if not batch:
                    raise StopIteration
                break
            self._position += len(line)
            value = line.rstrip(b"\r\n")
            if value.strip():
                batch.append(RawMessage(value, self._origin, 0, self._line))
            self._line += 1
        return batch

    def snapshot(self) -> FileState:
        return (self._position, self._line)

    def close(self) -> None:
        self._file.close()


class JsonlFileSource(FixedPartitionedSource[RawMessage, FileState]):
    """One partition (named after the path) that yields each non-empty line as a RawMessage."""

    def __init__(self, path: str | Path, batch_size: int = 2000) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.path = Path(path)
        self.batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [str(self.path)]

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[FileState]) -> _JsonlPartition:
        return _JsonlPartition(self.path, tuple(resume_state) if resume_state else (0, 0), self.batch_size)
