"""The ingest ASGI app: ``POST /v1/feedback`` (one JSON event or NDJSON), ``/healthz``, ``/readyz``.

Every event is checked by the flow's own :class:`~boucle.operators.decode.Decoder` (no second
validator): valid ones are forwarded even when others in the same body are refused, and the
answer lists each refused line with its reason code.
"""

from __future__ import annotations

import asyncio
import hmac
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from boucle.config.settings import Settings
from boucle.operators.decode import DeadLetter, Decoder
from boucle.sources.message import RawMessage

__all__ = ["MAX_BODY_BYTES", "create_app", "split_body"]

MAX_BODY_BYTES = 5 * 1024 * 1024
_TYPES = ("application/json", "application/x-ndjson")


def split_body(body: bytes, content_type: str) -> list[bytes]:
    """The events of a body: the whole body for JSON, each non-blank line for NDJSON.

    >>> split_body(b'{"a": 1}\\n\\n{"b": 2}\\n', "application/x-ndjson")
    [b'{"a": 1}', b'{"b": 2}']
    """
    if content_type == "application/x-ndjson":
        return [line for line in (raw.strip() for raw in body.split(b"\n")) if line]
    return [body]


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings, forward, token: str | None = None, max_body: int = MAX_BODY_BYTES) -> Starlette:
    """The app; ``forward`` takes ``[(site_id, bytes)]`` and has ``ready()``; ``token`` None = no auth."""
    decoder = Decoder(settings)
    expected = f"Bearer {token}".encode() if token else None
    received = [0]  # offsets of this process's messages (their position: ingest:0:N)

    async def feedback(request: Request):
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return JSONResponse({"error": "missing or bad bearer token"}, 401,
                                    headers={"WWW-Authenticate": "Bearer"})
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in _TYPES:
            return JSONResponse({"error": f"Content-Type must be one of {', '.join(_TYPES)}"}, 415)
        body = await _read_limited(request, max_body)
        if body is None:
            return JSONResponse({"error": f"body larger than {max_body} bytes"}, 413)
        now = int(time.time() * 1000)
        values = split_body(body, content_type)
        start, received[0] = received[0], received[0] + len(values)
        messages = [RawMessage(v, "ingest", 0, start + i, received_ms=now) for i, v in enumerate(values)]
        results = [decoder.decode(m) for m in messages]
        valid = [(r.site_id, m.value) for m, r in zip(messages, results) if not isinstance(r, DeadLetter)]
        errors = [{"index": i, "reason_code": r.reason_code, "reason": r.reason}
                  for i, r in enumerate(results) if isinstance(r, DeadLetter)]
        try:
            await asyncio.to_thread(forward.send, valid)
        except Exception as exc:  # noqa: BLE001 - the sender learns it was not taken
            return JSONResponse({"error": f"not forwarded: {exc}"}, 503)
        counts = {"accepted": len(valid), "rejected": len(errors)}
        if errors:
            return JSONResponse({**counts, "errors": errors}, 400)
        return JSONResponse(counts, 202)

    async def healthz(_request: Request):
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request):
        ready = await asyncio.to_thread(forward.ready)
        return JSONResponse({"ready": ready}, 200 if ready else 503)

    return Starlette(routes=[
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ])
