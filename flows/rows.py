"""Domain objects to warehouse rows: the only place that knows both the flow and the tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from operators.alerts import now_ms
from operators.decode import DecodedBatch, Feedback
from operators.privacy import mask_pii
from operators.windows import SCORE_COLUMNS, WindowedBatch
from sinks.batch import TableBatch

__all__ = ["alert_rows", "dead_letter_rows", "feedback_rows", "score_rows"]

FEEDBACK_COLUMNS = (
    "event_id", "occurred_at", "received_at", "site_id", "region", "channel", "journey_stage",
    "scores", "attributes", "comment", "language", "customer_id", "consent_contact", "late", "origin",
)  # fmt: skip
ALERT_COLUMNS = (
    "alert_id", "kind", "status", "severity", "site_id", "region", "attribute", "triggers",
    "message", "owner", "event_time", "detected_at", "payload",
)  # fmt: skip
DEAD_LETTER_COLUMNS = ("origin", "partition", "offset", "received_at", "reason_code", "reason", "raw")


def feedback_rows(batch: WindowedBatch, region_of: dict[str, str]) -> list[TableBatch]:
    if not batch.events:
        return []
    rows = [_feedback_row(e, region_of) for e in batch.events]
    return [TableBatch("feedback", FEEDBACK_COLUMNS, rows)]


def _feedback_row(e: Feedback, region_of: dict[str, str]) -> tuple:
    customer = e.customer
    return (
        e.event_id, e.ts_ms, e.received_ms or e.ts_ms, e.site_id, region_of.get(e.site_id, ""),
        e.channel, e.journey_stage, e.scores, e.attributes, mask_pii(e.comment), e.language,
        str(customer.get("id") or ""), 1 if customer.get("consent_contact") is True else 0,
        1 if e.late else 0, e.position,
    )  # fmt: skip


def score_rows(batch: WindowedBatch) -> list[TableBatch]:
    return [TableBatch("attribute_scores", SCORE_COLUMNS, batch.rows)] if batch.rows else []


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def alert_rows(alert: dict[str, Any]) -> list[TableBatch]:
    ms = _ms
    row = (
        alert["alert_id"], alert["kind"], alert["status"], alert["severity"], alert["site_id"],
        alert["region"], alert["attribute"] or "", alert["triggers"], alert["message"],
        alert["owner"], ms(alert["event_time"]), ms(alert["detected_at"]), orjson.dumps(alert),
    )  # fmt: skip
    return [TableBatch("alerts", ALERT_COLUMNS, [row])]


def dead_letter_rows(batch: DecodedBatch) -> list[TableBatch]:
    if not batch.rejected:
        return []
    now = now_ms()
    rows = [
        (d.message.origin, d.message.partition, d.message.offset, d.message.received_ms or now,
         d.reason_code, d.reason, d.message.value)
        for d in batch.rejected
    ]  # fmt: skip
    return [TableBatch("dead_letters", DEAD_LETTER_COLUMNS, rows)]
