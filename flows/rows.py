"""Domain objects to warehouse rows: the only place that knows both the flow and the tables."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from boucle.config.settings import Settings
from boucle.config.times import DAY_MS, local_days, now_ms
from boucle.operators.alerts import alert_json
from boucle.operators.decode import DecodedBatch
from boucle.operators.privacy import DEFAULT_REGIONS, mask_pii
from boucle.operators.windows import SCORE_COLUMNS, WindowedBatch
from boucle.sinks.batch import TableBatch

if TYPE_CHECKING:  # the detectors behind it are not needed to write rows (nor by `boucle db migrate`)
    from boucle.operators.attribute_regions import ImportanceSnapshot
    from boucle.operators.attribute_sites import SeriesWatch

__all__ = [
    "alert_rows", "dead_letter_rows", "dead_letter_text", "dimension_rows", "feedback_rows", "importance_rows",
    "score_rows", "series_status_rows", "warehouse_alert_json", "window_rows",
]

DEAD_LETTER_COLUMNS = ("origin", "partition", "offset", "received_at", "reason_code", "reason", "raw")
SITE_COLUMNS = ("site_id", "name", "region", "region_name", "country", "kind", "language")
QUESTION_COLUMNS = ("attribute", "is_score", "label_fr", "label_en", "min", "max", "bottom_max", "top_min")


def dimension_rows(settings: Settings) -> list[TableBatch]:
    """The ``sites`` (entity registry) and ``questions`` (catalogue) rows of ``settings``, for
    :func:`sinks.clickhouse.schema.sync_dimensions`.

    >>> from boucle.config.loader import settings_from_dict
    >>> sites, questions = dimension_rows(settings_from_dict({
    ...     "regions": [{"id": "north", "name": "Nord"}], "sites": [{"id": "s1", "region": "north"}]}))
    >>> sites.rows, questions.rows[0]
    ([('s1', 's1', 'north', 'Nord', '', 'store', 'fr')], ('nps', 1, 'NPS', 'NPS', 0, 10, 6, 9))
    """
    region_names = {r.id: r.name or r.id for r in settings.regions}
    sites = [
        (s.id, s.name or s.id, s.region, region_names.get(s.region, s.region), s.country, s.kind, s.language)
        for s in settings.sites
    ]
    scores = set(settings.scores)
    questions = [
        (name, int(name in scores), m.label_fr or name, m.label_en or name, m.min, m.max, m.bottom_max, m.top_min)
        for name, m in settings.questions().items()
    ]
    return [TableBatch("sites", SITE_COLUMNS, sites), TableBatch("questions", QUESTION_COLUMNS, questions)]


def feedback_rows(
    batch: WindowedBatch, region_of: dict[str, str], phone_regions: dict[str, tuple[str, ...]] | None = None,
    zone_of: dict[str, str] | None = None,
) -> list[TableBatch]:
    """The ``feedback`` rows of one site's windowed batch;
    ``phone_regions``: per site, the region hints of the comment masking (its country first);
    ``zone_of``: per site, the IANA zone of its local ``day`` (absent: UTC)."""
    events = batch.events
    if not events:
        return []
    # Column by column: a list comprehension per column is the cheapest way through Python. The
    # validated channel, journey stage, ratings and language travel as one small JSON object in the
    # `raw` column, which ClickHouse unpacks (see v0001_tables.sql) on the writer's side, off the
    # worker's thread: building the rating maps in Arrow from Python dicts costs several times more.
    # It is encoded from the validated fields, not copied from the message: a message with a
    # duplicated key is read last-wins by the decoder, first-wins by ClickHouse.
    dumps = orjson.dumps
    site_id = events[0].site_id
    customers = [e.customer for e in events]
    regions = phone_regions.get(site_id, DEFAULT_REGIONS) if phone_regions else DEFAULT_REGIONS
    day_of = local_days(zone_of.get(site_id, "") if zone_of else "").day_of
    return [
        TableBatch.from_columns(
            "feedback",
            {
                "raw": [
                    dumps({"channel": e.channel, "journey_stage": e.journey_stage, "scores": e.scores,
                           "attributes": e.attributes, "language": e.language})
                    for e in events
                ],
                "event_id": [e.event_id for e in events],
                "occurred_at": [e.ts_ms for e in events],
                "day": [day_of(e.ts_ms) for e in events],
                "received_at": [e.received_ms or e.ts_ms for e in events],
                "site_id": [site_id] * len(events),
                "region": [region_of.get(site_id, "")] * len(events),
                "comment": [mask_pii(c, regions) if c else c for c in [e.comment for e in events]],
                "customer_id": [str(c.get("id") or "") for c in customers],
                "consent_contact": [1 if c.get("consent_contact") is True else 0 for c in customers],
                "late": [1 if e.late else 0 for e in events],
                "origin": [e.position for e in events],
            },
        )
    ]


def score_rows(batch: WindowedBatch) -> list[TableBatch]:
    return [TableBatch("attribute_scores", SCORE_COLUMNS, batch.rows)] if batch.rows else []


def window_rows(
    pairs: list[tuple[str, WindowedBatch]], region_of: dict[str, str],
    phone_regions: dict[str, tuple[str, ...]] | None = None, zone_of: dict[str, str] | None = None,
) -> list[TableBatch]:
    """The ``feedback`` and ``attribute_scores`` rows of a windowed shard item (its sites' batches,
    :mod:`operators.site_shards`): one batch per table, so the next steps pay their per-item cost
    once per shard, not once per site."""
    feedback = [b for _, batch in pairs for b in feedback_rows(batch, region_of, phone_regions, zone_of)]
    scores = [row for _, batch in pairs for row in batch.rows]
    out = [TableBatch.concat(feedback)] if len(feedback) > 1 else feedback
    return out + ([TableBatch("attribute_scores", SCORE_COLUMNS, scores)] if scores else [])


_ALERT_TEXT_COLUMNS = ("alert_id", "kind", "status", "severity", "site_id", "region", "message", "owner")


_CONTACT_PLACEHOLDERS = {"email": "[email]", "phone": "[phone]"}


def warehouse_alert_json(alert: dict[str, Any]) -> bytes:
    """The alert as the warehouse keeps it: as published, but a contact's e-mail and phone replaced
    by placeholders (the frontline gets them from the alert topic; the warehouse keeps only that
    there was a contact, and the customer id that ``feedback`` holds too). The comment and message
    were masked when the alert was built.

    >>> warehouse_alert_json({"alert_id": "a1", "contact": {"id": "c1", "email": "a@b.fr", "phone": "+33 6 12"}})
    b'{"alert_id":"a1","contact":{"id":"c1","email":"[email]","phone":"[phone]"}}'
    >>> warehouse_alert_json({"alert_id": "a1"})
    b'{"alert_id":"a1"}'
    """
    contact = alert.get("contact")
    if not contact:
        return alert_json(alert)
    masked = dict(alert)
    masked["contact"] = (
        {key: _CONTACT_PLACEHOLDERS.get(key, value) for key, value in contact.items()}
        if isinstance(contact, dict) else "[contact]"
    )
    return orjson.dumps(masked, option=orjson.OPT_NON_STR_KEYS)


def alert_rows(alerts: list[dict[str, Any]], zone_of: dict[str, str] | None = None) -> list[TableBatch]:
    """Alerts travel as their published JSON plus the columns Python already holds (each column
    ClickHouse extracts from the JSON is one more parse of it); the times go as numbers when every
    alert carries them (:class:`~operators.alerts.Alert`), else ClickHouse parses them from the JSON.
    ``zone_of``: per site, the IANA zone of the alert's local ``day`` (absent, or a regional
    incident: the UTC day)."""
    if not alerts:
        return []
    columns: dict[str, list] = {"payload": [warehouse_alert_json(a) for a in alerts]}
    for name in _ALERT_TEXT_COLUMNS:
        columns[name] = [a[name] for a in alerts]
    columns["attribute"] = [a["attribute"] or "" for a in alerts]
    columns["triggers"] = [a["triggers"] for a in alerts]
    if all(getattr(a, "event_ms", None) is not None for a in alerts):  # else parsed from the payload
        columns["event_time"] = [a.event_ms for a in alerts]
        columns["detected_at"] = [a.detected_ms for a in alerts]
        if zone_of:
            columns["day"] = [local_days(zone_of.get(a["site_id"], "")).day_of(a.event_ms) for a in alerts]
    return [TableBatch.from_columns("alerts", columns)]


def importance_rows(snapshot: ImportanceSnapshot) -> list[TableBatch]:
    attributes = list(snapshot.weights)
    k = len(attributes)
    return [
        TableBatch.from_columns(
            "attribute_importance",
            {
                "region": [snapshot.region] * k,
                "attribute": attributes,
                "day": [snapshot.day_ms // DAY_MS] * k,
                "target": [snapshot.target] * k,
                "weight": [snapshot.weights[a] for a in attributes],
                "correlation": [snapshot.correlations[a] for a in attributes],
                "n": [snapshot.n] * k,
                "status": [snapshot.status] * k,
                "answered": [snapshot.answered.get(a, 0.0) for a in attributes],
                "updated_at": [snapshot.t_ms] * k,
            },
        )
    ]


SERIES_STATUS_COLUMNS = ("site_id", "region", "question", "watched", "needs", "n_history", "responses", "per_day",
                         "updated_at")


def series_status_rows(news: list[SeriesWatch]) -> list[TableBatch]:
    """``series_status`` rows of a batch of status news (:class:`~operators.attribute_sites.SeriesWatch`)."""
    if not news:
        return []
    return [TableBatch("series_status", SERIES_STATUS_COLUMNS, [
        (w.site_id, w.region, w.question, int(w.watched), w.needs, w.n_history, w.responses, w.per_day, w.t_ms)
        for w in news])]


# A contact field's string value in a JSON text: masked whatever it holds (it need not look like a
# phone or an address to be one).
_CONTACT_FIELD = re.compile(rb'"(email|phone)"(\s*:\s*)"(?:[^"\\]|\\.)*"')


def dead_letter_text(value: bytes, keep_raw: bool = False) -> str:
    """A rejected message as the dead-letter outputs keep it: its text, masked unless ``keep_raw``.

    Masking keeps the structure (it is for debugging): only the values of ``email``/``phone``
    fields and what :func:`~operators.privacy.mask_pii` finds are replaced.

    >>> dead_letter_text(b'{"site_id":"nope","customer":{"email":"jean","phone":"0612345678"},"comment":"a@b.fr"}')
    '{"site_id":"nope","customer":{"email":"[email]","phone":"[phone]"},"comment":"[email]"}'
    >>> dead_letter_text(b'{"comment":"a@b.fr"', keep_raw=True)
    '{"comment":"a@b.fr"'
    """
    if not keep_raw:
        value = _CONTACT_FIELD.sub(lambda m: b'"%s"%s"[%s]"' % (m[1], m[2], m[1]), value)
    text = value.decode("utf-8", "backslashreplace")
    return text if keep_raw else mask_pii(text)


def dead_letter_rows(batch: DecodedBatch, keep_raw: bool = False) -> list[TableBatch]:
    """``dead_letters`` rows: ``raw`` the original bytes with ``keep_raw``, else their masked text
    (and the reason masked too: it may quote the input)."""
    if not batch.rejected:
        return []
    now = now_ms()
    rows = [
        (d.message.origin, d.message.partition, d.message.offset, d.message.received_ms or now,
         d.reason_code, d.reason if keep_raw else mask_pii(d.reason),
         d.message.value if keep_raw else dead_letter_text(d.message.value).encode("utf-8"))
        for d in batch.rejected
    ]
    return [TableBatch("dead_letters", DEAD_LETTER_COLUMNS, rows)]
