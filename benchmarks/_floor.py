"""The same-run floor the benchmarks print beside their figures: bare ``orjson.loads`` over the
same bytes, whatever the machine's speed that minute (a helper, not a benchmark of its own).

>>> loads_seconds([b'{"a": 1}', b'{"broken']) >= 0.0
True
"""

from __future__ import annotations

import gc
import time
from typing import Callable, Iterable

import orjson


def loads_seconds(values: Iterable[bytes], clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds (by ``clock``) that ``orjson.loads`` takes over ``values``; a malformed value is
    parsed as far as it goes, as the flow's decoder does."""
    gc.collect()
    started = clock()
    for value in values:
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError:
            pass
    return clock() - started
