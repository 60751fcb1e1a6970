"""HTTP webhooks (``httpx``): POST a JSON body, optionally signed (:mod:`sinks.notify.signing`).

A 2xx answer is a delivery. 408, 425, 429 and 5xx answers and transport errors (refused,
reset, timeout) may pass later; any other 4xx will not (a wrong URL, a payload refused), so it
is a permanent failure. ``Retry-After`` is not honoured here: the caller's backoff decides.

>>> import httpx
>>> poster = WebhookPoster(httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404))))
>>> try:
...     poster.post("http://hooks.example/x", b"{}")
... except DeliveryFailed as exc:
...     exc.reason, exc.permanent
('http 404 Not Found from hooks.example', True)
"""

from __future__ import annotations

from typing import Mapping

import httpx

from boucle.sinks.notify.errors import DeliveryFailed
from boucle.sinks.notify.signing import signature_headers

__all__ = ["WebhookPoster"]

_RETRYABLE = {408, 425, 429}


class WebhookPoster:
    """Posts bodies with one pooled ``httpx.Client`` (``close()`` when done)."""

    def __init__(self, client: httpx.Client | None = None, *, timeout: float = 10.0, user_agent: str = "boucle-notify") -> None:
        self.client = client or httpx.Client(timeout=timeout, headers={"User-Agent": user_agent})

    def post(self, url: str, body: bytes, *, secret: str = "", headers: Mapping[str, str] | None = None,
             timestamp: int | None = None) -> None:
        """POST ``body`` (JSON) to ``url``, signed with ``secret`` if given; raise :class:`DeliveryFailed`."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if secret:
            sent.update(signature_headers(body, secret, timestamp))
        host = httpx.URL(url).host
        try:
            answer = self.client.post(url, content=body, headers=sent)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"{type(exc).__name__} posting to {host}: {exc}") from None
        if answer.is_success:
            return
        permanent = 400 <= answer.status_code < 500 and answer.status_code not in _RETRYABLE
        raise DeliveryFailed(f"http {answer.status_code} {answer.reason_phrase} from {host}", permanent=permanent)

    def close(self) -> None:
        self.client.close()
