"""TOML configs: locating shipped configs, ``_base_`` inheritance, overrides."""

from detcore.config.loader import Config, apply_override, load_config, parse_value
from detcore.config.locate import ConfigEntry, find_config, shipped_configs

__all__ = [
    "Config", "ConfigEntry", "apply_override", "find_config", "load_config", "parse_value",
    "shipped_configs",
]
