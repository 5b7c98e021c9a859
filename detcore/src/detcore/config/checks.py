"""Checks of config values that name the key path: unknown keys (with close matches), types, ranges.

Every message has the form "config key <path> ...: what is wrong; what to do", and names the file
that set the key when the config knows it (``Config.origin``).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any

from detcore.errors import ConfigError


def where(cfg: Any, path: str) -> str:
    """`` (set in FILE)`` for a key of a loaded Config, else nothing."""
    origin = getattr(cfg, "origin", None)
    source = origin(path.replace("[", ".").replace("]", "")) if callable(origin) else None
    if source == "--set":
        return " (set by --set)"
    return f" (set in {source})" if source else ""


def check_keys(table: Mapping[str, Any], allowed: Collection[str], path: str, cfg: Any = None,
               what: str = "", elsewhere: Mapping[str, Collection[str]] | None = None) -> None:
    """Reject keys of ``table`` (at ``path``) that are not in ``allowed``, suggesting close names
    (also keys of other tables, ``elsewhere``: table path -> its keys, for a key put at the wrong level)."""
    unknown = [key for key in table if key not in allowed]
    if not unknown:
        return
    key = unknown[0]
    full = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, list(allowed), n=3, cutoff=0.6)
    if not close and elsewhere:
        nested = {f"{table_path}.{name}": name for table_path, names in elsewhere.items() for name in names}
        by_name = difflib.get_close_matches(key, list(set(nested.values())), n=1, cutoff=0.8)
        close = [where_ for where_, name in nested.items() if by_name and name == by_name[0]][:3]
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    more = f" (and {len(unknown) - 1} more unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    owner = f" {what}" if what else ""
    raise ConfigError(
        f"Unknown config key {full!r}{where(cfg, full)}{more}.{hint} The{owner} table "
        f"{path or '(top level)'} accepts: {', '.join(sorted(allowed))}. Fix the spelling or remove the key."
    )


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def check_int(value: Any, path: str, cfg: Any = None, minimum: int | None = None) -> int:
    """``value`` as an int (not bool, not float) that is at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"config key {path}{where(cfg, path)} must be an integer, got {_type_name(value)} ({value!r})"
        )
    if minimum is not None and value < minimum:
        raise ConfigError(f"config key {path}{where(cfg, path)} must be at least {minimum}, got {value}")
    return value


def check_number(value: Any, path: str, cfg: Any = None, positive: bool = False) -> float:
    """``value`` as a float (ints accepted), > 0 when ``positive``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"config key {path}{where(cfg, path)} must be a number, got {_type_name(value)} ({value!r})")
    if positive and not value > 0:
        raise ConfigError(f"config key {path}{where(cfg, path)} must be positive, got {value}")
    return float(value)


def check_bool(value: Any, path: str, cfg: Any = None) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"config key {path}{where(cfg, path)} must be true or false, got {_type_name(value)} ({value!r})"
        )
    return value


def check_choice(value: Any, choices: Collection[Any], path: str, cfg: Any = None) -> Any:
    if value not in choices:
        raise ConfigError(
            f"config key {path}{where(cfg, path)} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
        )
    return value


def check_table(value: Any, path: str, cfg: Any = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key {path}{where(cfg, path)} must be a table, got {_type_name(value)} ({value!r})")
    return value
