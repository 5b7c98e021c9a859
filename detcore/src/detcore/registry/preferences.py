"""Which distribution wins when two register the same component name, stated once by the user.

Sources (the environment variable wins over the file):

- ``DETCORE_PREFER``: comma-separated ``[kind:]Name=distribution`` items, e.g.
  ``DETCORE_PREFER="necks:FPN=det-common,ResNet=det-common"`` (without ``kind:`` for every kind);
- the user file ``preferences.toml`` in ``$DETCORE_CONFIG_DIR`` (default
  ``$XDG_CONFIG_HOME/detcore``, i.e. ``~/.config/detcore``) with a ``[prefer]`` table of the same
  items: ``"necks:FPN" = "det-common"``. ``detcore config prefer necks:FPN det-common`` writes it.

A config's ``type = "dist::Name"`` still picks explicitly, whatever the preference says.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from detcore.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_VAR = "DETCORE_PREFER"
DIR_ENV_VAR = "DETCORE_CONFIG_DIR"
FILE_NAME = "preferences.toml"


def preferences_file() -> Path:
    """The user's preferences file (it may not exist)."""
    folder = os.environ.get(DIR_ENV_VAR)
    if not folder:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        folder = str(Path(base) / "detcore")
    return Path(folder) / FILE_NAME


def _parse_item(item: str, where: str) -> tuple[str, str]:
    key, sep, dist = item.partition("=")
    key, dist = key.strip().strip('"'), dist.strip().strip('"')
    if not sep or not key or not dist:
        raise ConfigError(f"{where}: {item!r} must look like [kind:]Name=distribution, e.g. necks:FPN=det-common")
    return key, dist


def load_preferences() -> dict[str, str]:
    """``{"kind:Name" or "Name": distribution}`` from the file, then the environment variable."""
    prefs: dict[str, str] = {}
    path = preferences_file()
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"detcore preferences file {path} cannot be read ({exc}); fix or delete it") from exc
        table = data.get("prefer", {})
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ConfigError(f"detcore preferences file {path}: [prefer] must map \"kind:Name\" to a distribution name")
        prefs.update(table)
    for item in filter(None, (part.strip() for part in os.environ.get(ENV_VAR, "").split(","))):
        key, dist = _parse_item(item, f"environment variable {ENV_VAR}")
        prefs[key] = dist
    return prefs


def preferred_distribution(kind: str, name: str) -> tuple[str, str] | None:
    """``(distribution, where it was stated)`` the user prefers for ``kind:name``, or None."""
    prefs = load_preferences()
    for key in (f"{kind}:{name}", name):
        if key in prefs:
            source = ENV_VAR if key in _env_keys() else str(preferences_file())
            return prefs[key], source
    return None


def _env_keys() -> set[str]:
    return {item.partition("=")[0].strip() for item in os.environ.get(ENV_VAR, "").split(",") if "=" in item}


def save_preference(key: str, distribution: str) -> Path:
    """Add or replace ``key`` (``kind:Name`` or ``Name``) in the user's preferences file."""
    from detcore.config.toml_writer import dumps

    path = preferences_file()
    data: dict = {}
    if path.is_file():
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    data.setdefault("prefer", {})[key] = distribution
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps(data), encoding="utf-8")
    return path
