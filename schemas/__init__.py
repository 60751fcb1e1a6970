"""Published contracts: the alert, defined once in :mod:`boucle.schemas.alert`, and its JSON Schema.

``alert.schema.json`` ships as package data and is generated, never edited by hand:
``python -m boucle.schemas`` rewrites it from the definition, ``python -m boucle.schemas --check``
says whether it is up to date (the tests fail when it is not).

>>> alert_schema() == json.loads(render_alert_schema())
True
>>> alert_schema()["properties"]["kind"]["type"]
'string'
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from boucle.schemas.alert import json_schema

__all__ = ["ALERT_SCHEMA_FILE", "alert_schema", "render_alert_schema"]

ALERT_SCHEMA_FILE = "alert.schema.json"


def alert_schema() -> dict[str, Any]:
    """The published alert JSON Schema, as shipped with the package."""
    return json.loads(resources.files(__package__).joinpath(ALERT_SCHEMA_FILE).read_text(encoding="utf-8"))


def render_alert_schema() -> str:
    """The text of ``alert.schema.json`` as generated from :class:`~boucle.schemas.alert.AlertV1`."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
