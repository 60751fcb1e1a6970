"""The alert contract (v1): deterministic ids and the fields every alert carries.

>>> alert_id("hot", "store-0001", "evt-1") == alert_id("hot", "store-0001", "evt-1")
True
>>> iso_ms(1795343465120)
'2026-11-22T10:31:05.120Z'
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

__all__ = ["ALERT_SCHEMA", "alert_id", "iso_ms", "new_alert", "now_ms"]

ALERT_SCHEMA = "boucle.alert/1"
_NAMESPACE = uuid.UUID("6f1c2f4e-6b55-4a8e-9a43-8d2f1b0c7a11")


def alert_id(kind: str, *evidence: str) -> str:
    """The same evidence replayed gives the same id (a UUIDv5 over kind and evidence)."""
    return str(uuid.uuid5(_NAMESPACE, "|".join((kind, *evidence))))


def iso_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def new_alert(
    *,
    id: str,
    kind: str,
    severity: str,
    site_id: str,
    region: str,
    triggers: list[str],
    evidence: dict[str, Any],
    message: str,
    event_ms: int,
    owner: str = "",
    team: str = "",
    attribute: str | None = None,
    status: str = "open",
    detected_ms: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An alert as published: a JSON-ready dict following DESIGN.md's contract."""
    return {
        "schema": ALERT_SCHEMA,
        "alert_id": id,
        "kind": kind,
        "status": status,
        "severity": severity,
        "site_id": site_id,
        "region": region,
        "attribute": attribute,
        "triggers": triggers,
        "evidence": evidence,
        "message": message,
        "owner": owner,
        "team": team,
        "event_time": iso_ms(event_ms),
        "detected_at": iso_ms(now_ms() if detected_ms is None else detected_ms),
        **extra,
    }
