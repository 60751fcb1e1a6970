"""Get sinks ready before the stream starts.

bytewax builds a sink's partition when the first item reaches it, in the worker's thread: a
warehouse connection, its migrations or a Kafka producer's first metadata request would then
stall the live stream for up to a second, right behind the first alerts. Sinks that can get ready
earlier have a ``prepare()`` method; :func:`prepare_sinks` calls it on every sink that has one.

>>> class Ready:
...     prepared = False
...     def prepare(self): self.prepared = True
>>> sink = Ready(); prepare_sinks([sink, object()]); sink.prepared
True
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["drain_sinks", "prepare_sinks"]


def prepare_sinks(sinks: Iterable[object]) -> None:
    for sink in sinks:
        prepare = getattr(sink, "prepare", None)
        if callable(prepare):
            prepare()


def drain_sinks(sinks: Iterable[object]) -> None:
    """Deliver what sinks still hold after an interrupted run (bytewax does not close them then):
    every sink with a ``drain()`` method gets it called; a failing one does not stop the others."""
    for sink in sinks:
        drain = getattr(sink, "drain", None)
        if callable(drain):
            try:
                drain()
            except Exception:  # noqa: BLE001 - already stopping; the others still deserve a try
                pass
