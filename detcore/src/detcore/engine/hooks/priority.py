"""Named hook priorities: lower runs first at every timepoint (MMCV's scale, 0 .. 100)."""

from __future__ import annotations

from detcore.errors import ConfigError

PRIORITIES = {
    "HIGHEST": 0,
    "VERY_HIGH": 10,
    "HIGH": 30,
    "ABOVE_NORMAL": 40,
    "NORMAL": 50,
    "BELOW_NORMAL": 60,
    "LOW": 70,
    "VERY_LOW": 90,
    "LOWEST": 100,
}


def get_priority(value: int | str) -> int:
    """An int priority, or a name from :data:`PRIORITIES` (case-insensitive)."""
    if isinstance(value, bool):
        raise ConfigError(f"hook priority must be an int or a name, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= 100:
            raise ConfigError(f"hook priority must be within 0..100, got {value}")
        return value
    if isinstance(value, str) and value.upper() in PRIORITIES:
        return PRIORITIES[value.upper()]
    raise ConfigError(f"unknown hook priority {value!r}; use 0..100 or one of {', '.join(PRIORITIES)}")
