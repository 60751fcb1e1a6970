"""Write through another sink on a background thread, without giving up at-least-once.

A slow write (a warehouse insert of a few hundred milliseconds) blocks the bytewax worker that
makes it, and everything behind it in that worker waits: hot alerts included. :class:`BackgroundSink`
wraps any :class:`~bytewax.outputs.DynamicSink`: ``write_batch`` only queues the items and a thread
hands them to the wrapped partition in order. It is a fixed-partitioned sink with one partition,
so bytewax calls its ``snapshot()`` at the end of every epoch, before committing it: ``snapshot``
waits until the queue is drained, so with recovery an epoch is never committed before its writes
are done. A failed write is raised in the worker at the next call (the flow fails and a resume
writes again). The queue is bounded (``max_pending`` batches): when writes fall behind, the worker
waits, as it would have without the thread.

Items reach it as ``(key, item)`` pairs (``flows.feedback_flow`` keys streams for fixed-partitioned
sinks); keys are ignored.

>>> from bytewax.testing import TestingSink
>>> out = []
>>> sink = BackgroundSink(TestingSink(out))
>>> part = sink.build_part("s", "background", None)
>>> part.write_batch([1, 2]); part.snapshot(); out
[1, 2]
>>> part.close()
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional

from bytewax.outputs import DynamicSink, FixedPartitionedSink, StatefulSinkPartition

from boucle.sinks.prepare import prepare_sinks

__all__ = ["BackgroundSink"]

_STOP = object()


class _Partition(StatefulSinkPartition[Any, None]):
    def __init__(self, inner, max_pending: int) -> None:
        self._inner = inner
        self._queue: queue.Queue = queue.Queue(max_pending)
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="background-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            items = self._queue.get()
            try:
                if items is _STOP:
                    return
                if self._error is None:
                    self._inner.write_batch(items)
            except BaseException as exc:  # noqa: BLE001 - handed to the worker
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"background write failed: {error}") from error

    def write_batch(self, values: list[Any]) -> None:
        self._raise()
        if values:
            self._queue.put(list(values))

    def snapshot(self) -> None:
        self._queue.join()  # the epoch commits only once its writes are done
        self._raise()
        return None

    def close(self) -> None:
        self._queue.join()
        self._queue.put(_STOP)
        self._thread.join()
        self._inner.close()
        self._raise()


class BackgroundSink(FixedPartitionedSink[Any, None]):
    """``inner``'s writes on a thread; epochs wait for them (see the module docstring).

    One partition by default. :meth:`over` a cluster's workers, it has one partition per worker
    (bytewax places the ``i``-th of the sorted partitions on worker ``i``) and sends an item of key
    ``k`` to partition ``route(k)``: given the worker a keyed step upstream already holds ``k`` on,
    each worker writes what it holds, and no item crosses to another worker (or process) to be
    written.

    >>> from bytewax.testing import TestingSink
    >>> sink = BackgroundSink(TestingSink([])).over(3, route=len)
    >>> sink.list_parts(), sink.part_fn("abcd")
    (['background-0000', 'background-0001', 'background-0002'], 4)
    """

    def __init__(self, inner: DynamicSink, max_pending: int = 8, workers: int = 1,
                 route: Callable[[str], int] | None = None) -> None:
        self.inner = inner
        self.max_pending = max_pending
        self.workers = workers
        self.route = route

    def over(self, workers: int, route: Callable[[str], int]) -> "BackgroundSink":
        """This sink with a partition per worker of a cluster of ``workers``, items sent to ``route(key)``."""
        return self if workers <= 1 else BackgroundSink(self.inner, self.max_pending, workers, route)

    def prepare(self) -> None:
        prepare_sinks([self.inner])

    def list_parts(self) -> list[str]:
        if self.workers <= 1:
            return ["background"]
        return [f"background-{i:04d}" for i in range(self.workers)]

    def part_fn(self, item_key: str) -> int:
        return 0 if self.route is None or self.workers <= 1 else self.route(item_key)

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _Partition:
        index = 0 if self.workers <= 1 else int(for_part.rpartition("-")[2])
        return _Partition(self.inner.build(step_id, index, self.workers), self.max_pending)
