"""Keys that spread a keyed step's work evenly over a cluster's workers.

bytewax 0.21 sends a keyed item to the worker ``h(key) % workers``, where ``h`` is Rust's default
hasher of the key string: SipHash-1-3 with zero keys over the key's UTF-8 bytes and a final
``0xff`` (:func:`worker_of`; ``tests/test_routing.py`` checks it against bytewax's own routing).
With few keys, that hash is luck: the demo's six regions fall four on one worker and two on the
other, so in a 2-process cluster one process judges two thirds of the attribute alerts. :func:`spread`
plans instead: it gives each name to the least loaded worker, heaviest first (by weight, e.g. the
region's sites), then finds the routing key of that worker — the name itself when the hash already
sends it there (always, on one worker), else the name with the first ``~n`` suffix that does.

>>> worker_of("provence", 2), worker_of("belgium", 2)
(1, 0)
>>> weights = {"a": 3, "b": 3, "c": 2, "d": 1, "e": 1}
>>> keys = spread(weights, workers=2)
>>> load = [0, 0]
>>> for name, key in keys.items():
...     load[worker_of(key, 2)] += weights[name]
>>> load, keys["a"], keys["d"]
([5, 5], 'a~1', 'd')
>>> spread({"north": 5, "south": 1}, workers=1)
{'north': 'north', 'south': 'south'}

A key names a step's state in the recovery store: a cluster of another size routes under other
keys, which is why a recovery directory serves one cluster size (see README, Several processes).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["siphash13", "spread", "worker_of"]

_MASK = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash13(data: bytes, k0: int = 0, k1: int = 0) -> int:
    """SipHash-1-3 of ``data`` (64-bit keys ``k0``, ``k1``), as an unsigned 64-bit integer.

    >>> hex(siphash13(b""))
    '0xd1fba762150c532c'
    """
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def sip_round() -> None:
        v0, v1, v2, v3 = v
        v0 = (v0 + v1) & _MASK
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _MASK
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _MASK
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _MASK
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
        v[:] = v0, v1, v2, v3

    whole = len(data) - len(data) % 8
    for i in range(0, whole, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v[3] ^= m
        sip_round()
        v[0] ^= m
    last = int.from_bytes(data[whole:], "little") | ((len(data) & 0xFF) << 56)
    v[3] ^= last
    sip_round()
    v[0] ^= last
    v[2] ^= 0xFF
    for _ in range(3):
        sip_round()
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def worker_of(key: str, workers: int) -> int:
    """The worker (0 to ``workers - 1``) bytewax routes a keyed item of ``key`` to."""
    return siphash13(key.encode("utf-8") + b"\xff") % workers


def spread(weights: Mapping[str, float], workers: int) -> dict[str, str]:
    """Each name's routing key, the names shared out over ``workers`` so that each worker's sum of
    weights is as even as a greedy plan makes it (heaviest first to the least loaded)."""
    load = [0.0] * max(workers, 1)
    keys = {}
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        target = min(range(len(load)), key=lambda w: (load[w], w))
        load[target] += weights[name]
        key, n = name, 0
        while workers > 1 and worker_of(key, workers) != target:
            n += 1
            key = f"{name}~{n}"
        keys[name] = key
    return keys
