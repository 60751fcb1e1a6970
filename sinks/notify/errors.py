"""The one failure every channel raises."""

from __future__ import annotations

__all__ = ["DeliveryFailed"]


class DeliveryFailed(Exception):
    """A message not delivered: ``reason`` for people, ``permanent`` when trying again cannot help
    (a 4xx answer, an address the relay refuses).

    >>> str(DeliveryFailed("http 503 Service Unavailable"))
    'http 503 Service Unavailable'
    """

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
