"""The ground floor: typed settings, the loader with key-path errors, durations, time helpers.

Every layer may import this package; it imports only pydantic and the standard library. The
default ``boucle.toml`` (the demo network) ships inside it as package data.
"""

from boucle.config.loader import (
    ConfigError,
    default_config_path,
    load_settings,
    settings_from_dict,
)
from boucle.config.settings import Settings, parse_duration

__all__ = ["ConfigError", "Settings", "default_config_path", "load_settings", "parse_duration", "settings_from_dict"]
