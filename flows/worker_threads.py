"""Each bytewax worker thread keeps one Python thread state for the whole run.

``run_main`` runs the one worker on the calling thread. A cluster (``--processes``, ``--workers``)
runs its workers on threads bytewax starts itself, and they take the GIL through PyO3's
``Python::with_gil``: on a thread Python did not start, every acquisition creates a Python thread
state and every release destroys it, thousands of times a second (a flow of 200,000 items in
batches of 10 on 2 worker threads: 1.1-2.2 s of CPU against 0.3-0.4 s with one thread state;
``threading.local()`` forgets everything between two calls). One ``PyGILState_Ensure`` that is
never released makes the thread state live as long as the thread, as the main thread's does.

:class:`KeepThreadState` is a source with no items whose ``build`` runs on every worker thread:
``build_flow`` adds it, so every worker does this before it runs a step.

>>> keep_thread_state()  # on a thread Python started (here the main one): nothing to do
False
"""

from __future__ import annotations

import ctypes
import threading

from bytewax.inputs import DynamicSource, StatelessSourcePartition

__all__ = ["KeepThreadState", "keep_thread_state"]

# Lives in the thread state itself: found set only while this thread's state is the kept one (a
# thread id alone could be a finished worker's, reused).
_kept = threading.local()


def keep_thread_state() -> bool:
    """Keep this thread's Python thread state until the thread ends; True if this call did it.

    A thread ``threading`` knows (the main one, a ``threading.Thread``) has a lasting thread state
    already; only a foreign thread (a bytewax worker of a cluster) needs it, once.
    """
    ident = threading.get_ident()
    started_by_python = threading._active.get(ident)  # private, but current_thread() would make a dummy
    if started_by_python is not None and not isinstance(started_by_python, threading._DummyThread):
        return False
    if getattr(_kept, "done", False):
        return False
    ctypes.pythonapi.PyGILState_Ensure()  # never released: the thread state outlives this call
    _kept.done = True
    return True


class _Done(StatelessSourcePartition[None]):
    def next_batch(self) -> list[None]:
        raise StopIteration


class KeepThreadState(DynamicSource[None]):
    """A source of no items: building it on a worker keeps that worker thread's Python thread state."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Done:
        keep_thread_state()
        return _Done()
