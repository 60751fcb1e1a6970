"""Published contracts, shipped as package data: ``alert.schema.json`` (JSON Schema of an alert)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["alert_schema"]


def alert_schema() -> dict[str, Any]:
    """The published alert JSON Schema, as shipped with the package.

    >>> alert_schema()["properties"]["kind"]["type"]
    'string'
    """
    return json.loads(resources.files(__package__).joinpath("alert.schema.json").read_text(encoding="utf-8"))
