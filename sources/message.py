"""The unit every source emits: original bytes plus where they came from."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RawMessage"]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as received, before any decoding.

    ``origin``/``partition``/``offset`` locate it in its source (a topic, a file, the simulator),
    so a dead letter can point back at it and a replay gives it the same identity.

    >>> RawMessage(b'{}', "simulator", 0, 7).position
    'simulator:0:7'
    """

    value: bytes
    origin: str
    partition: int
    offset: int
    key: bytes | None = None
    received_ms: int = 0  # wall clock at arrival, epoch milliseconds (0 = unknown)

    @property
    def position(self) -> str:
        return f"{self.origin}:{self.partition}:{self.offset}"
