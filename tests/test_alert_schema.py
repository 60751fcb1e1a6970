"""The published alert JSON Schema: generated from the one definition, shipped as is, true of every alert."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import jsonschema
import msgspec
import orjson
import pytest
from bytewax.testing import TestingSink, run_main

from boucle.flows.feedback_flow import FlowOutputs, build_flow
from boucle.flows.loop import LoopSources
from boucle.operators.alerts import alert_json
from boucle.schemas import ALERT_SCHEMA_FILE, alert_schema, render_alert_schema
from boucle.schemas.alert import AlertV1
from boucle.sources.simulator import Simulator, SimulatorSource

REPO = Path(__file__).resolve().parent.parent
KINDS = {"hot", "attribute", "regional_incident", "case_sla", "theme_surge", "hot_digest"}
FIELDS = tuple(f.name for f in msgspec.structs.fields(AlertV1))


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(alert_schema(), format_checker=jsonschema.FormatChecker())


def test_shipped_schema_is_the_generated_one():
    expected = render_alert_schema()
    shipped = resources.files("boucle.schemas").joinpath(ALERT_SCHEMA_FILE).read_text(encoding="utf-8")
    in_repo = (REPO / "schemas" / ALERT_SCHEMA_FILE).read_text(encoding="utf-8")
    assert shipped == expected and in_repo == expected, (
        "schemas/alert.schema.json is not the schema generated from boucle.schemas.alert.AlertV1:"
        " run `python -m boucle.schemas` and commit the file"
    )


def test_regeneration_command_writes_and_checks(tmp_path):
    target = tmp_path / "alert.schema.json"
    run = [sys.executable, "-m", "boucle.schemas", "--output", str(target)]
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 1  # missing
    subprocess.run(run, check=True, capture_output=True)
    assert target.read_text(encoding="utf-8") == render_alert_schema()
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 0
    target.write_text(target.read_text(encoding="utf-8").replace("never repurposed", "repurposed"))
    assert subprocess.run([*run, "--check"], capture_output=True).returncode == 1


def test_schema_is_valid_draft_2020_12_and_follows_the_definition():
    schema = alert_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("/alert.schema.json") and schema["title"] == "Boucle alert (boucle.alert/1)"
    assert "never repurposed" in schema["description"] and schema["additionalProperties"] is True
    assert tuple(schema["properties"]) == FIELDS  # the alert's key order
    assert schema["required"] == [
        f.name for f in msgspec.structs.fields(AlertV1) if f.required
    ] == ["schema", "alert_id", "kind", "status", "severity", "site_id", "region", "attribute", "triggers",
          "evidence", "message", "event_time", "detected_at"]  # as in contract v1's hand-written schema
    assert schema["properties"]["schema"]["enum"] == ["boucle.alert/1"]
    assert all(p.get("description") or "$ref" in p or "enum" in p for p in schema["properties"].values())


def _hot(**changes):
    alert = {
        "schema": "boucle.alert/1", "alert_id": "0b8f3bb6-2a0c-5d1e-9c4f-1e2d3c4b5a69", "kind": "hot",
        "status": "open", "severity": "high", "site_id": "store-0001", "region": "north", "attribute": None,
        "triggers": ["rule"], "evidence": {"rules": ["detractor"], "scores": {"nps": 2}}, "message": "NPS 2.",
        "owner": "", "team": "", "event_time": "2026-11-22T10:31:05.120Z", "detected_at": "2026-11-22T10:31:06.000Z",
        "response": {"event_id": "e1", "channel": "web", "scores": {"nps": 2}, "attributes": {}},
    }
    alert.update(changes)
    return {k: v for k, v in alert.items() if v is not ...}


@pytest.mark.parametrize("alert, valid", [
    (_hot(), True),
    (_hot(future_field={"any": "thing"}), True),  # v1 adds fields: readers accept those they do not know
    (_hot(contact={"phone": "0612345678"}), True),
    (_hot(contact={"phone": "0612345678", "address": "1 rue"}), False),  # contact: closed
    (_hot(response=...), False),  # a hot alert carries its response
    (_hot(triggers=["trend"]), False),  # and the rule trigger
    (_hot(kind="regional_incident", site_id="", response=..., triggers=["trend"]), True),  # keyed by region
    (_hot(kind="attribute", site_id="", response=..., triggers=["trend"]), False),  # others name their site
    (_hot(severity="urgent"), False),
    (_hot(status="closed"), False),
    (_hot(schema="boucle.alert/2"), False),
    (_hot(alert_id="not-a-uuid5"), False),
    (_hot(event_time="2026-11-22T10:31:05Z"), False),  # millisecond precision
    (_hot(attribute=...), False),
])
def test_schema_accepts_and_rejects(alert, valid):
    assert _validator().is_valid(alert) is valid
    decodes = True
    try:
        msgspec.json.decode(orjson.dumps(alert), type=AlertV1)
    except msgspec.ValidationError:
        decodes = False
    # The struct checks types, patterns and enums, not the rules across fields (kind-dependent ones).
    if valid:
        assert decodes


@pytest.fixture(scope="module")
def run_alerts(settings):
    """Every alert of a short simulated run with the loop closed: all kinds in a few seconds."""
    alerts = []
    source = SimulatorSource(Simulator(settings, seed=11, days=5), partitions=1, batch_size=1000)
    run_main(build_flow(settings, source, FlowOutputs(alerts=[TestingSink(alerts)]), loop=LoopSources(simulate=True)))
    return alerts


def test_every_alert_of_a_run_follows_the_published_schema(run_alerts):
    kinds = Counter(alert["kind"] for alert in run_alerts)
    assert set(kinds) == KINDS, f"{kinds}: a kind is missing, lengthen the run (or change its seed)"
    hot_states = {alert["status"] for alert in run_alerts if alert["kind"] == "hot"}
    assert hot_states == {"open", "updated", "resolved"}  # hot alerts follow their cases (issue 17)
    validator = _validator()
    order = {name: i for i, name in enumerate(FIELDS)}
    for alert in run_alerts:
        payload = alert_json(alert)
        document = orjson.loads(payload)
        errors = sorted(validator.iter_errors(document), key=str)
        assert not errors, f"{alert['kind']} {alert['alert_id']}: {errors[0].message} at {list(errors[0].path)}"
        decoded = msgspec.json.decode(payload, type=AlertV1)  # the definition's types, patterns and enums
        assert decoded.alert_id == alert["alert_id"]
        positions = [order[key] for key in alert]  # only the contract's fields, in its order
        assert positions == sorted(positions)
