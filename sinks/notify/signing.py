"""HMAC-SHA256 signatures of webhook bodies, as webhook senders conventionally make them.

The signed text is ``"{timestamp}.{body}"`` (Unix seconds, then the raw body bytes). A request
carries it twice, for receivers of either convention:

- ``X-Boucle-Timestamp: 1764755400`` and ``X-Boucle-Signature: v1=<hex>``;
- ``Boucle-Signature: t=1764755400,v1=<hex>`` (the Stripe style).

A receiver recomputes the HMAC with the shared secret over the *raw* body (before any JSON
parsing), compares in constant time, and refuses timestamps older than a tolerance (replays):

>>> headers = signature_headers(b'{"a":1}', "s3cret", timestamp=1764755400)
>>> headers["Boucle-Signature"]
't=1764755400,v1=96c2680a72e5ee177b97fe1af0011b8694addf8db94d67bc8e79a6035c216716'
>>> verify(b'{"a":1}', headers, "s3cret", now=1764755410)
True
>>> verify(b'{"a":2}', headers, "s3cret", now=1764755410)
False
>>> verify(b'{"a":1}', headers, "s3cret", now=1764755400 + 3600)
False
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping

__all__ = ["TOLERANCE_S", "sign", "signature_headers", "verify"]

TOLERANCE_S = 300  # a signature older (or newer) than this is refused: a replayed request


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"{timestamp}.{body}"`` under ``secret``."""
    message = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The headers that sign ``body`` (both conventions, one signature)."""
    ts = int(time.time() if timestamp is None else timestamp)
    digest = sign(body, secret, ts)
    return {"X-Boucle-Timestamp": str(ts), "X-Boucle-Signature": f"v1={digest}",
            "Boucle-Signature": f"t={ts},v1={digest}"}


def _parts(headers: Mapping[str, str]) -> tuple[str | None, list[str]]:
    lower = {k.lower(): v for k, v in headers.items()}
    if combined := lower.get("boucle-signature"):
        items = [p.strip().partition("=") for p in combined.split(",")]
        return (next((v for k, _, v in items if k == "t"), None), [v for k, _, v in items if k == "v1"])
    ts, sig = lower.get("x-boucle-timestamp"), lower.get("x-boucle-signature", "")
    return ts, [s.strip()[3:] for s in sig.split(",") if s.strip().startswith("v1=")]


def verify(body: bytes, headers: Mapping[str, str], secret: str, *, tolerance_s: float = TOLERANCE_S,
           now: float | None = None) -> bool:
    """Whether ``headers`` (either convention) sign the raw ``body`` with ``secret`` within ``tolerance_s``."""
    ts, candidates = _parts(headers)
    if ts is None or not ts.isdigit() or not candidates:
        return False
    if abs((time.time() if now is None else now) - int(ts)) > tolerance_s:
        return False
    expected = sign(body, secret, int(ts))
    return any(hmac.compare_digest(expected, c) for c in candidates)
