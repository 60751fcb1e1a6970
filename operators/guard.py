"""A poison message costs one dead letter, never the flow.

Decoding refuses what it cannot type, so a later step should never fail on an event; if one does
(a bug, an input nobody foresaw), the step's guard dead-letters the event with
``reason_code = "internal_error"`` and ``reason = "internal_error: <step>: <exception>"`` and the
flow goes on. On Kafka with recovery a crash would re-read the same message at every restart: a
crash loop that stops every site's alerts.

The cost stays off the hot path: a step runs a whole batch inside one ``try`` (free on CPython
3.11+ until something raises) and only a failed batch is run again one item at a time, to find and
dead-letter the items that fail alone.

>>> out, dead = batch_or_each("double", lambda xs: [2 * x for x in xs], [1, "x", 3],
...                           lambda x: RawMessage(str(x).encode(), "t", 0, 0))
>>> out, [d.reason for d in dead]
([2, 'xx', 6], [])
>>> out, dead = batch_or_each("inverse", lambda xs: [1 / x for x in xs], [1, 0, 4],
...                           lambda x: RawMessage(str(x).encode(), "t", 0, x))
>>> out, [(d.message.offset, d.reason) for d in dead]
([1.0, 0.25], [(0, 'internal_error: inverse: ZeroDivisionError: division by zero')])

Tests make a step fail on chosen items through :func:`inject_fault` (no input is known to make a
step fail any more: that is the point of typed decoding):

>>> inject_fault("double", lambda x: x == 3)
>>> batch_or_each("double", lambda xs: [2 * x for x in xs], [1, 3],
...               lambda x: RawMessage(b"", "t", 0, x))[1][0].reason
'internal_error: double: InjectedFault: fault injected in step double'
>>> clear_faults()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import bytewax.operators as op
import msgspec
from bytewax.dataflow import Stream, operator

from boucle.operators.decode import DeadLetter, DecodedBatch, Feedback, internal_error
from boucle.sources.message import RawMessage

__all__ = [
    "FAULTS", "Guarded", "InjectedFault", "batch_or_each", "check_faults", "clear_faults", "feedback_message", "inject_fault",
    "split_dead",
]

T = TypeVar("T")
U = TypeVar("U")

#: Test hook: step name -> a predicate on the step's items; a matching item makes the step raise.
FAULTS: dict[str, Callable[[Any], bool]] = {}


class InjectedFault(RuntimeError):
    """The failure :func:`inject_fault` asked for."""


def inject_fault(step: str, predicate: Callable[[Any], bool]) -> None:
    """Make ``step`` raise on every item ``predicate`` accepts (tests only; see the module doc)."""
    FAULTS[step] = predicate


def clear_faults() -> None:
    FAULTS.clear()


def check_faults(step: str, items: Iterable[Any]) -> None:
    """Raise :class:`InjectedFault` when a fault is injected in ``step`` for one of ``items``."""
    predicate = FAULTS.get(step)
    if predicate is not None and any(predicate(item) for item in items):
        raise InjectedFault(f"fault injected in step {step}")


def batch_or_each(
    step: str, run: Callable[[list[T]], list[U]], items: list[T], message_of: Callable[[T], RawMessage]
) -> tuple[list[U], list[DeadLetter]]:
    """``run(items)``; if it raises, ``run([item])`` for each item, dead-lettering those that fail.

    For a step whose ``run`` has no state, or state that applying an item twice leaves as it was
    (else the items of a failed batch before the poison one count twice: see the README).
    """
    try:
        if FAULTS:
            check_faults(step, items)
        return run(items), []
    except Exception:  # noqa: BLE001 - find the item at fault below
        pass
    out: list[U] = []
    dead: list[DeadLetter] = []
    for item in items:
        try:
            if FAULTS:
                check_faults(step, (item,))
            out.extend(run([item]))
        except Exception as exc:  # noqa: BLE001 - one dead letter instead of a crash loop
            dead.append(internal_error(step, message_of(item), exc))
    return out, dead


_encode = msgspec.json.Encoder().encode


def feedback_message(event: Feedback) -> RawMessage:
    """The message of an accepted event, for its dead letter: its position, and the event as the
    flow decoded it (JSON; the original bytes are not kept past decoding)."""
    origin, partition, offset = event.position.rsplit(":", 2)
    return RawMessage(_encode(event), origin, int(partition), int(offset), event.site_id.encode(), event.received_ms)


def _dead_of(item: Any) -> DeadLetter | None:
    if type(item) is DeadLetter:
        return item
    if type(item) is tuple and len(item) == 2 and type(item[1]) is DeadLetter:
        return item[1]
    return None


@dataclass(frozen=True)
class Guarded:
    """A guarded step's output without its dead letters, and those dead letters."""

    values: Stream[Any]
    dead: Stream[DecodedBatch]


@operator
def split_dead(step_id: str, up: Stream[Any]) -> Guarded:
    """A guarded step's output, without its dead letters (plain or keyed), and those dead letters
    as :class:`DecodedBatch` items (the form the dead-letter outputs take)."""
    branch = op.branch("branch", up, lambda item: _dead_of(item) is None)
    dead = op.flat_map_batch("dead", branch.falses, lambda items: [DecodedBatch([], [_dead_of(i) for i in items], 0)])
    return Guarded(branch.trues, dead)
