"""TOML configs with ``_base_`` inheritance and ``--set`` overrides. Configs are data only.

Merging: tables merge key by key; a table with ``_delete_ = true`` replaces the inherited
table; ``_delete_ = ["a", "b"]`` removes those inherited keys first; lists and scalars
replace. ``_base_`` is a string or list of relative ``.toml`` paths or shipped config names;
later bases override earlier ones and the file itself overrides all of them.
"""

from __future__ import annotations

import copy
import difflib
import json
import sys
from pathlib import Path
from typing import Any, Iterable

from detcore.config.locate import find_config
from detcore.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
OVERRIDE_ORIGIN = "--set"  # the origin of keys a command-line override set


class Config(dict):
    """A loaded config: nested plain dicts and lists, plus where each key came from."""

    def __init__(self, data: dict[str, Any], source: Path | None = None,
                 origins: dict[str, Path | str] | None = None) -> None:
        super().__init__(data)
        self.source = source
        self.origins = origins or {}

    def origin(self, key_path: str) -> Path | str | None:
        """The file that set ``key_path`` (or its closest parent), or "--set", for error messages."""
        parts = key_path.split(".")
        while parts:
            found = self.origins.get(".".join(parts))
            if found is not None:
                return found
            parts.pop()
        return self.source

    def get_path(self, key_path: str, default: Any = None) -> Any:
        """``cfg.get_path("model.bbox_head.num_classes")``."""
        node: Any = self
        for part in key_path.split("."):
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self))

    def dump(self) -> str:
        """The merged config as TOML text (round-trips through ``load_config``)."""
        from detcore.config.toml_writer import dumps

        return dumps(self.to_dict())

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)


def load_config(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Load a config by path or shipped name, resolve ``_base_`` and apply ``key=value`` overrides."""
    path = find_config(name_or_path)
    origins: dict[str, Path] = {}
    data = _load_file(path, chain=(), origins=origins)
    cfg = Config(data, source=path, origins=origins)
    for item in overrides:
        apply_override(cfg, item)
    return cfg


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror}.") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Malformed TOML in config file {path}: {exc}.") from exc


def _load_file(path: Path, chain: tuple[Path, ...], origins: dict[str, Path]) -> dict[str, Any]:
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ConfigError(f"_base_ cycle in configs: {cycle}. Remove one of these inheritances.")
    raw = _read_toml(path)
    bases = raw.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a string or a list of strings, got {bases!r}.")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = _resolve_base(path, base)
        merged = _merge(merged, _load_file(base_path, (*chain, path), origins), path, "")
    _record_origins(raw, path, "", origins)
    return _merge(merged, raw, path, "")


def _resolve_base(path: Path, base: str) -> Path:
    if base.endswith(".toml"):
        candidate = (path.parent / base).resolve()
        if not candidate.is_file():
            raise ConfigError(f"{path}: _base_ file {base!r} not found (looked at {candidate}).")
        return candidate
    try:
        return find_config(base)
    except ConfigError as exc:
        raise ConfigError(f"{path}: _base_ {base!r}: {exc}") from exc


def _record_origins(data: dict[str, Any], path: Path, prefix: str, origins: dict[str, Path]) -> None:
    for key, value in data.items():
        key_path = f"{prefix}{key}"
        origins[key_path] = path
        if isinstance(value, dict):
            _record_origins(value, path, key_path + ".", origins)


def _merge(base: dict[str, Any], update: dict[str, Any], path: Path, prefix: str) -> dict[str, Any]:
    """``update`` merged onto a copy of ``base`` (see module docstring)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if key == DELETE_KEY:
            continue
        key_path = f"{prefix}{key}"
        if isinstance(value, dict):
            delete = value.get(DELETE_KEY, False)
            inherited = out.get(key)
            if delete is True or not isinstance(inherited, dict):
                out[key] = _strip_delete(value)
                continue
            if isinstance(delete, list):
                for gone in delete:
                    if gone not in inherited:
                        raise ConfigError(
                            f"{path}: {key_path}._delete_ names {gone!r}, which the base "
                            f"config does not set (it has: {', '.join(inherited) or 'nothing'})."
                        )
                    inherited = {k: v for k, v in inherited.items() if k != gone}
            elif delete is not False:
                raise ConfigError(
                    f"{path}: {key_path}._delete_ must be true or a list of keys, got {delete!r}."
                )
            out[key] = _merge(inherited, value, path, key_path + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _strip_delete(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_delete(v) for k, v in value.items() if k != DELETE_KEY}
    if isinstance(value, list):
        return [_strip_delete(v) for v in value]
    return value


def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (numbers, booleans, strings, arrays, inline tables); else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(cfg: Config, item: str) -> None:
    """Apply ``a.b.c=value`` (the key must exist) or ``+a.b.c=value`` (may add a new key).

    List elements are addressed by index (``train_pipeline.2.scale=[640, 480]``).
    """
    if "=" not in item:
        raise ConfigError(f"Override {item!r} must look like key.path=value.")
    key_path, _, raw_value = item.partition("=")
    key_path = key_path.strip()
    allow_new = key_path.startswith("+")
    key_path = key_path.lstrip("+")
    if not key_path:
        raise ConfigError(f"Override {item!r} has an empty key.")
    cfg.origins[key_path] = OVERRIDE_ORIGIN
    value = parse_value(raw_value.strip())
    parts = key_path.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        walked = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"Override {key_path}: {walked} indexes a list of {len(node)} items "
                    f"(config {cfg.origin(walked)})."
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"Override {key_path}: {walked} is not a table in config {cfg.source}.")
        if part not in node:
            if allow_new:
                if last:
                    node[part] = value
                    return
                node[part] = {}
            else:
                close = difflib.get_close_matches(part, list(node), n=3)
                hint = f" Did you mean: {', '.join(close)}?" if close else ""
                parent = ".".join(parts[:depth]) or "(top level)"
                raise ConfigError(
                    f"Unknown config key {walked!r} in {cfg.source}: {parent} has no key "
                    f"{part!r}.{hint} Prefix the key with '+' to add a new key."
                )
        if last:
            node[part] = value
            return
        node = node[part]
