"""A bytewax input that replays the simulator, resumably, optionally at wall-clock speed.

Partition ``sim-i`` carries the sites with ``index % partitions == i``. Its snapshot is the
offset of the next message; a resumed partition regenerates its stream (deterministic by seed)
and skips what was already emitted.

>>> from boucle.config.loader import load_settings
>>> from boucle.sources.simulator import Simulator
>>> source = SimulatorSource(Simulator(load_settings(), days=0.5, volume_scale=0.1), partitions=2)
>>> source.list_parts()
['sim-0', 'sim-1']
>>> part = source.build_part("in", "sim-1", resume_state=3)
>>> [m.offset for m in part.next_batch()][:2], part.snapshot() > 3
([3, 4], True)
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from itertools import islice
from typing import Iterator, Optional

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from boucle.sources.message import RawMessage
from boucle.sources.simulator.simulator import Simulator

__all__ = ["SimulatorSource"]


class _SimulatorPartition(StatefulSourcePartition[RawMessage, int]):
    def __init__(self, messages: Iterator[RawMessage], offset: int, batch_size: int, realtime: bool) -> None:
        self._messages = messages
        self._offset = offset
        self._batch_size = batch_size
        self._realtime = realtime
        self._held: RawMessage | None = None  # realtime: the next message, not due yet
        if offset:
            next(islice(messages, offset - 1, offset), None)  # regenerate and skip

    def next_batch(self) -> list[RawMessage]:
        if not self._realtime:
            batch = list(islice(self._messages, self._batch_size))
            if not batch:
                raise StopIteration
            self._offset += len(batch)
            return batch
        now_ms = time.time() * 1000
        batch: list[RawMessage] = []
        while len(batch) < self._batch_size:
            message = self._held if self._held is not None else next(self._messages, None)
            self._held = None
            if message is None:
                if not batch:
                    raise StopIteration
                break
            if message.received_ms > now_ms:
                self._held = message
                break
            batch.append(message)
        self._offset += len(batch)
        return batch

    def next_awake(self) -> Optional[datetime]:
        if self._realtime and self._held is not None:
            return datetime.fromtimestamp(self._held.received_ms / 1000, tz=timezone.utc)
        return None

    def snapshot(self) -> int:
        return self._offset


class SimulatorSource(FixedPartitionedSource[RawMessage, int]):
    """Feed a :class:`Simulator` into a dataflow as batches of :class:`RawMessage`.

    ``realtime=True`` emits each message only once the wall clock reaches its arrival time
    (``received_ms``), sleeping through ``next_awake``; build the simulator with ``start=now``.
    """

    def __init__(self, simulator: Simulator, partitions: int = 1, batch_size: int = 2000,
                 realtime: bool = False) -> None:
        if partitions < 1 or batch_size < 1:
            raise ValueError("partitions and batch_size must be >= 1")
        self.simulator = simulator
        self.partitions = partitions
        self.batch_size = batch_size
        self.realtime = realtime

    def list_parts(self) -> list[str]:
        return [f"sim-{i}" for i in range(self.partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: Optional[int]) -> _SimulatorPartition:
        partition = int(for_part.removeprefix("sim-"))
        messages = self.simulator.messages(partition, self.partitions)
        return _SimulatorPartition(messages, resume_state or 0, self.batch_size, self.realtime)
