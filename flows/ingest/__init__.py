"""``boucle serve ingest``: feedback events received over HTTP (webhooks in), validated, forwarded."""

from boucle.flows.ingest.app import create_app
from boucle.flows.ingest.forward import FileForward, KafkaForward

__all__ = ["FileForward", "KafkaForward", "create_app"]
