"""The alert contract (v1), defined once: :class:`AlertV1` is the layout every alert follows.

Everything else derives from it: the field order of the alerts the engine builds
(:func:`~boucle.operators.alerts.build_alert`), and the published JSON Schema
(``schemas/alert.schema.json``, written by ``python -m boucle.schemas``; a test fails when the
shipped file and :func:`json_schema` differ). Contract v1: fields are added, never repurposed.
A field without a default is always present; a field defaulting to ``UNSET`` is left out of an
alert that has no value for it.

>>> [f.name for f in msgspec.structs.fields(AlertV1)][:4]
['schema', 'alert_id', 'kind', 'status']
>>> schema = json_schema()
>>> schema["properties"]["schema"]["enum"], schema["required"][-1]
(['boucle.alert/1'], 'detected_at')

A published alert decodes into the definition, which checks its types, patterns and enums
(the tests decode the engine's alerts so):

>>> raw = (b'{"schema": "boucle.alert/1", "alert_id": "0b8f3bb6-2a0c-5d1e-9c4f-1e2d3c4b5a69", "kind": "hot",'
...        b' "status": "open", "severity": "high", "site_id": "store-0001", "region": "north", "attribute": null,'
...        b' "triggers": ["rule"], "evidence": {"rules": ["detractor"]}, "message": "NPS 2.",'
...        b' "event_time": "2026-11-22T10:31:05.120Z", "detected_at": "2026-11-22T10:31:06.000Z"}')
>>> alert = msgspec.json.decode(raw, type=AlertV1)
>>> alert.evidence.rules, alert.owner, alert.response
(['detractor'], '', UNSET)
>>> msgspec.json.decode(raw.replace(b'"high"', b'"urgent"'), type=AlertV1)
Traceback (most recent call last):
...
msgspec.ValidationError: Invalid enum value 'urgent' - at `$.severity`
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from boucle.config.settings import CHANNELS, SEVERITY_RANK

__all__ = ["ALERT_SCHEMA", "SCHEMA_ID", "AlertDocument", "AlertV1", "Contact", "Evidence", "Response", "json_schema"]

ALERT_SCHEMA = "boucle.alert/1"
SCHEMA_ID = "https://boucle.example/schemas/alert.schema.json"

# The structs describe the JSON. At run time an alert is a dict laid out from AlertV1's fields
# (boucle.operators.alerts); the enums of channels and severities are the configuration's own lists.
Timestamp = Annotated[
    str,
    Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$", extra_json_schema={"format": "date-time"}),
]
Scores = dict[str, int]
Names = list[str]


class Evidence(Struct, kw_only=True):
    """The numbers behind the alert; its keys depend on the kind. Hot alerts: rules, scores, attributes_at_minimum, purchase_keywords. Attribute alerts: level, baseline, peer median, z, n, slope (rating points per day), rate_per_day (responses), importance (absent while importance_status is not_enough_data), importance_status (learnt, network or not_enough_data). Regional incidents: sites_down, n_sites, median_z. Case SLA: hot_alert_id, opened_at, due_at, sla_hours, hot_severity. Theme surges: theme, n, comments, share, baseline_share. Hot alerts updated or resolved by their case: rules, scores, case_status, case_at, fcr, root_cause. Hot digests: day, cap, held, by_rule, by_severity, alerts."""

    rules: Annotated[Names, Meta(description="Hot alerts: the rules that matched, the one that named the alert first.")] | UnsetType = UNSET
    scores: Annotated[Scores, Meta(description="Hot alerts: the response's scores.")] | UnsetType = UNSET
    attributes_at_minimum: Annotated[Names, Meta(description="Hot alerts: the attributes rated at the bottom of their scale.")] | UnsetType = UNSET
    purchase_keywords: Annotated[Names, Meta(description="Hot alerts: the purchase words found in the comment.")] | UnsetType = UNSET
    case_status: Annotated[Literal["contacted", "escalated", "resolved"], Meta(description="Hot alerts updated or resolved by their case: how far the case went.")] | UnsetType = UNSET
    case_at: Annotated[Timestamp, Meta(description="Hot alerts updated or resolved by their case: when (the case event's time).")] | UnsetType = UNSET
    held: Annotated[int, Meta(description="Hot digests: the site's hot alerts of the day held back by the rate cap.")] | UnsetType = UNSET


class Response(Struct, kw_only=True):
    """Hot alerts: the response that triggered it (comment PII-masked)."""

    event_id: Annotated[str, Meta(description="The feedback event's event_id.")]
    channel: Annotated[Literal[("", *CHANNELS)], Meta(description="The response's channel; empty when the event named none.")]
    journey_stage: str | UnsetType = UNSET
    scores: Annotated[Scores, Meta(description="Headline scores by question (nps, csat, ces, ...).")]
    attributes: Annotated[Scores, Meta(description="Attribute ratings by attribute, on the catalogue's scales.")]
    comment: Annotated[str, Meta(description="The comment, PII-masked.")] | UnsetType = UNSET
    language: str | UnsetType = UNSET


class Contact(Struct, kw_only=True, forbid_unknown_fields=True):
    """Hot alerts only, and only when the customer consented to be contacted."""

    id: str | UnsetType = UNSET
    email: str | UnsetType = UNSET
    phone: str | UnsetType = UNSET


class AlertV1(Struct, kw_only=True):
    """One alert as published on the alert topic (Kafka value, JSON; key = site_id, or the region id for a regional incident; headers kind, severity, region, status, schema) and appended to the alerts JSONL log. Contract v1: fields are added, never repurposed, so readers must ignore fields they do not know. alert_id is deterministic (a UUIDv5 over the kind and the evidence): a replay or a resume after a crash republishes the same id with the same content, except detected_at, which is the wall-clock time of detection. Compare alerts across replays by alert_id and by content without detected_at. Delivery is at-least-once: deduplicate on alert_id (plus status for updates)."""

    # The order of the fields is the order of an alert's keys: a new field goes last (the keys of
    # today's alerts keep their places), defaulting to UNSET unless every alert has it.
    schema: Annotated[Literal[ALERT_SCHEMA], Meta(description="Contract version; also the `schema` header.")]
    alert_id: Annotated[str, Meta(
        pattern="^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        description="Deterministic UUIDv5: the same evidence replayed gives the same id.",
        extra_json_schema={"format": "uuid"},
    )]
    kind: Annotated[str, Meta(
        description="hot (one bad experience), attribute, regional_incident, case_sla, theme_surge, hot_digest (a site's hot alerts of a day beyond its rate cap), ... (new kinds may appear).",
        examples=["hot", "attribute", "regional_incident", "case_sla", "theme_surge", "hot_digest"],
    )]
    status: Annotated[Literal["open", "updated", "resolved"], Meta(
        description="open when first published; updated when it is republished (same alert_id) with new evidence, e.g. a higher severity, or a hot alert whose case was contacted or escalated; resolved once, when it is over (a hot alert: its case resolved)."
    )]
    severity: Annotated[Literal[tuple(SEVERITY_RANK)], Meta(
        description="low < medium < high < critical (hot alerts: the most severe rule that matched)."
    )]
    site_id: Annotated[str, Meta(
        description="The site; also the Kafka key. Empty for a regional incident, whose Kafka key is the region id."
    )]
    region: Annotated[str, Meta(description="From the entity registry; also the `region` header.")]
    attribute: Annotated[str | None, Meta(
        description="The attribute (or theme) concerned; null for hot and case_sla alerts."
    )]
    triggers: Annotated[list[Annotated[str, Meta(examples=["rule", "trend", "peer", "expectation", "sla", "theme"])]], Meta(
        description="Which tests fired: rule (hot alerts), trend, peer, expectation, sla (case_sla), theme (theme_surge)."
    )]
    evidence: Evidence
    message: Annotated[str, Meta(description="One human sentence in the site's language (PII masked).")]
    owner: Annotated[str, Meta(description="Who acts on it, from the entity registry: the site's owner (hot, attribute), its manager (case_sla), the region's manager (regional_incident).")] = ""
    team: Annotated[str, Meta(description="The team it is routed to: the site's team, or for a regional incident the region's team (its id when the registry names none).")] = ""
    event_time: Annotated[Timestamp, Meta(
        description="When the evidence happened (event time): UTC, millisecond precision, e.g. 2026-11-22T10:31:05.120Z."
    )]
    detected_at: Annotated[Timestamp, Meta(
        description="Wall-clock time of detection (UTC, millisecond precision). Differs between a run and its replay: ignore it when comparing alert content."
    )]
    response: Response | UnsetType = UNSET
    contact: Contact | UnsetType = UNSET


# What JSON Schema can say and a struct cannot: the document's identity, that readers accept
# fields they do not know (v1 adds fields), and the rules that depend on the kind.
AlertDocument = Annotated[AlertV1, Meta(
    title=f"Boucle alert ({ALERT_SCHEMA})",
    extra_json_schema={
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "additionalProperties": True,
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": "hot"}}, "required": ["kind"]},
                "then": {"required": ["response"], "properties": {"triggers": {"contains": {"const": "rule"}}}},
            },
            {
                "if": {"properties": {"kind": {"const": "regional_incident"}}, "required": ["kind"]},
                "else": {"properties": {"site_id": {"minLength": 1}}},
            },
        ],
    },
)]

# Key order of the generated document: identity, then what a reader looks for first.
_ROOT_ORDER = ("$schema", "$id", "title", "description", "type", "required", "additionalProperties", "properties",
               "allOf")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an alert, generated from :data:`AlertDocument`.

    msgspec describes the struct as a ``$ref`` into ``$defs``; the alert's own schema is moved
    to the root, where readers expect ``properties``, and the nested structs stay in ``$defs``.
    """
    generated = msgspec.json.schema(AlertDocument)
    defs = generated.pop("$defs")
    body = defs.pop(generated.pop("$ref").rsplit("/", 1)[-1])
    merged = {**body, **generated}  # the document's annotations win (title)
    root = {key: merged.pop(key) for key in _ROOT_ORDER if key in merged}
    root.update(merged)
    root["$defs"] = defs
    return root
