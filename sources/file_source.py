"""Replay a JSONL file (one raw message per line) into a dataflow, resumably.

Offsets are line numbers from 0; empty lines are skipped but still counted, so an offset always
points at the same line. The snapshot is ``(byte position, next line number, fingerprint)``, the
fingerprint a hash of every byte before the position. A resume checks that the file still starts
with those bytes: a file rotated in place (replaced or rewritten under the same name) is not the
one the snapshot was taken from, so it is read from its beginning, with a warning on the
``boucle.sources.file_source`` logger. A file that only grew resumes where it stopped.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "feedback.jsonl"
>>> _ = path.write_bytes(b'{"a": 1}\\n\\n{"a": 2}\\n')
>>> part = JsonlFileSource(path).build_part("in", str(path), None)
>>> [(m.value, m.offset) for m in part.next_batch()]
[(b'{"a": 1}', 0), (b'{"a": 2}', 2)]
>>> part.snapshot()[:2]
(19, 3)
>>> part.close()

A copy sorted by time (:func:`sources.time_order.sort_by_time`) is read with ``origin`` (the
input's path, which names the partition and the messages) and ``numbered=True``: each of its lines
carries the input's line number, which becomes the message's offset.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from boucle.sources.message import RawMessage
from boucle.sources.time_order import split_numbered

__all__ = ["JsonlFileSource"]

log = logging.getLogger(__name__)

# (byte position of the next line, its line number, hash of the bytes before it); snapshots
# before the fingerprint have two items and are checked against the file's size only.
FileState = tuple


def _new_hash():
    return hashlib.blake2b(digest_size=16)


def _hash_range(fd: int, digest, start: int, end: int, chunk: int = 1 << 20) -> int:
    """Add bytes ``start``..``end`` of the file to ``digest``; where it stopped (the file may be shorter)."""
    while start < end:
        data = os.pread(fd, min(chunk, end - start), start)
        if not data:
            break
        digest.update(data)
        start += len(data)
    return start


class _JsonlPartition(StatefulSourcePartition[RawMessage, FileState]):
    def __init__(self, path: Path, state: FileState, batch_size: int, origin: str, numbered: bool) -> None:
        self._origin = origin
        self._numbered = numbered
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._position, self._line = state[0], state[1]
        self._hash, self._hashed = _new_hash(), 0  # the hash of the first `_hashed` bytes
        if self._position and not self._same_file(state[2] if len(state) > 2 else None):
            log.warning(
                "%s is not the file its recovery snapshot was taken from (rotated or rewritten in place):"
                " reading it from the beginning instead of byte %d (line %d)", path, self._position, self._line,
            )
            self._position, self._line = 0, 0
            self._hash, self._hashed = _new_hash(), 0
        self._file.seek(self._position)
        self._batch_size = batch_size

    def _same_file(self, fingerprint: str | None) -> bool:
        """The file is at least as long as the position and starts with the snapshot's bytes."""
        fd = self._file.fileno()
        if os.fstat(fd).st_size < self._position:
            return False
        if fingerprint is None:
            return True
        self._hashed = _hash_range(fd, self._hash, 0, self._position)
        return self._hash.hexdigest() == fingerprint

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
            if self._numbered:
                number, value = split_numbered(value)
                batch.append(RawMessage(value, self._origin, 0, number))
            elif value.strip():
                batch.append(RawMessage(value, self._origin, 0, self._line))
            self._line += 1
        return batch

    def snapshot(self) -> FileState:
        # Hash what was read since the last snapshot: once per epoch, not once per line.
        self._hashed = _hash_range(self._file.fileno(), self._hash, self._hashed, self._position)
        return (self._position, self._line, self._hash.hexdigest())

    def close(self) -> None:
        self._file.close()


class JsonlFileSource(FixedPartitionedSource[RawMessage, FileState]):
    """One partition (named after ``origin``, by default the path) that yields each non-empty line
    as a RawMessage; ``numbered``: the file is a sorted copy (see the module)."""

    def __init__(
        self, path: str | Path, batch_size: int = 2000, *, origin: str | Path | None = None, numbered: bool = False
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.path = Path(path)
        self.batch_size = batch_size
        self.origin = str(origin if origin is not None else self.path)
        self.numbered = numbered

    def list_parts(self) -> list[str]:
        return [self.origin]

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[FileState]) -> _JsonlPartition:
        state = tuple(resume_state) if resume_state else (0, 0)
        return _JsonlPartition(self.path, state, self.batch_size, self.origin, self.numbered)
