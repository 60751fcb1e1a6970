"""Keep bytewax's Rust panic message off the terminal: the command's own line says what failed.

When a step of a dataflow raises (a warehouse that refuses an insert, a full disk), bytewax turns
the Python exception into a Rust panic, which Rust's panic hook prints on stderr before bytewax
hands the exception back to Python (``thread '<unnamed>' panicked at src/outputs.rs:364:37:``,
``Box<dyn Any>``, ``note: run with `RUST_BACKTRACE=1` ...``). That hook cannot be changed from
Python, so :func:`quiet_rust_panics` passes file descriptor 2 through a pipe for the duration of
the command and drops those blocks; everything else reaches stderr unchanged, in order.
``BOUCLE_DEBUG=1`` leaves stderr alone (see :mod:`boucle.flows.cli.errors`).

>>> f = PanicFilter()
>>> f.feed(b"warning: x\\nthread '<unnamed>' panicked at src/outputs.rs:364:37:\\nBox<dyn Any>\\n")
b'warning: x\\n'
>>> f.feed(b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\\n\\nwarehouse error: y\\n")
b'warehouse error: y\\n'
"""

from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["PanicFilter", "quiet_rust_panics"]

_PANIC = re.compile(rb"^thread '[^']*' panicked at ")
_NOTE = b"note: run with `RUST_BACKTRACE"
_START = b"thread '"
_MAX_PAYLOAD_LINES = 20  # a "panic" block longer than this was not one: let it through


class PanicFilter:
    """Drops Rust panic blocks from a byte stream fed in chunks (see the module)."""

    def __init__(self) -> None:
        self._partial = b""
        self._held: list[bytes] | None = None  # the lines of a panic block being dropped
        self._after_note = False

    def feed(self, data: bytes) -> bytes:
        """What of ``data`` (and the data before it) may be written now."""
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = [self._line(line) for line in lines]
        # A partial line that cannot start a panic block goes out now (a prompt, a progress line).
        if self._held is None and self._partial and not _START.startswith(self._partial[:len(_START)]):
            out.append(self._partial)
            self._partial = b""
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest: a partial line and a block that never ended."""
        rest = b"".join(line + b"\n" for line in self._held or []) + self._partial
        self._held, self._partial = None, b""
        return rest

    def _line(self, line: bytes) -> bytes:
        """What to write for one complete line (without its newline)."""
        after_note, self._after_note = self._after_note, False
        if self._held is None:
            if _PANIC.match(line):
                self._held = [line]
                return b""
            return b"" if after_note and not line.strip() else line + b"\n"
        self._held.append(line)
        if line.startswith(_NOTE):
            self._held, self._after_note = None, True
        elif len(self._held) > _MAX_PAYLOAD_LINES:  # not a panic block after all: let it through
            held, self._held = self._held, None
            return b"".join(h + b"\n" for h in held)
        return b""


@contextmanager
def quiet_rust_panics() -> Iterator[None]:
    """File descriptor 2 through a :class:`PanicFilter` for the block (nothing when it cannot)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError, AttributeError):
        yield
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, saved), name="stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)  # the pipe's last writer is gone: the pump reads its end and stops
        pump.join(timeout=5)
        os.close(saved)


def _pump(read_end: int, target: int) -> None:
    panic_filter = PanicFilter()
    try:
        while data := os.read(read_end, 65536):
            _write(target, panic_filter.feed(data))
        _write(target, panic_filter.flush())
    finally:
        os.close(read_end)


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
