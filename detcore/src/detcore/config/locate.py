"""Finds configs: by path, or by the name (file stem) a distribution ships them under.

Distributions declare their config folder with an entry point in group ``detcore.configs``
whose value is the dotted package path of the folder (e.g. ``det_common.configs``); plugins
can add folders through the ``detcore_config_dirs`` hook. Locating a folder uses
``importlib.util.find_spec`` on the top-level package only, so nothing is imported.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from detcore.errors import ConfigError
from detcore.registry.discovery import normalize_dist, scan_entry_points
from detcore.registry.kinds import CONFIGS_GROUP

QUALIFIER = "::"


@dataclass(frozen=True)
class ConfigEntry:
    """One shipped config file."""

    name: str
    path: Path
    distribution: str
    version: str

    @property
    def is_base(self) -> bool:
        """Base fragments live under a ``_base_`` folder and are not meant to run alone."""
        return "_base_" in self.path.parts


def _package_dir(dotted: str) -> Path | None:
    top, *rest = dotted.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location, *rest)
        if folder.is_dir():
            return folder
    return None


@lru_cache(maxsize=1)
def config_dirs() -> tuple[tuple[Path, str, str], ...]:
    """(folder, distribution, version) of every declared config folder."""
    dirs = []
    for record in scan_entry_points():
        if record.group != CONFIGS_GROUP:
            continue
        folder = _package_dir(record.target.replace(":", "."))
        if folder is not None:
            dirs.append((folder, record.distribution, record.version))
    return tuple(dirs)


def extra_config_dirs() -> list[tuple[Path, str, str]]:
    """Folders contributed by pluggy plugins (imports the plugin modules)."""
    from detcore.plugins import get_plugin_manager

    pm = get_plugin_manager()
    found = []
    for plugin_name, folders in pm.config_dirs():
        for folder in folders:
            found.append((Path(folder), plugin_name, ""))
    return found


def shipped_configs(include_plugins: bool = False) -> list[ConfigEntry]:
    """Every TOML config of every installed distribution (and plugins, on request)."""
    dirs = list(config_dirs())
    if include_plugins:
        dirs += extra_config_dirs()
    entries = []
    for folder, dist, version in dirs:
        for path in sorted(folder.rglob("*.toml")):
            entries.append(ConfigEntry(path.stem, path, dist, version))
    return entries


def find_config(name_or_path: str | Path) -> Path:
    """A config file path from a path or a shipped name (``name`` or ``dist::name``)."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix == ".toml" or path.exists() or "/" in text:
        if path.is_file():
            return path.resolve()
        raise ConfigError(f"Config file {text} does not exist.")
    dist = None
    if QUALIFIER in text:
        dist, text = text.split(QUALIFIER, 1)
    matches = _matches(text, dist, include_plugins=False)
    if not matches:
        matches = _matches(text, dist, include_plugins=True)
    if len(matches) == 1:
        return matches[0].path
    if len(matches) > 1:
        listing = "; ".join(f"{m.distribution}: {m.path}" for m in matches)
        raise ConfigError(
            f"Config name {text!r} is shipped by more than one distribution ({listing}). "
            f"Use \"<distribution>{QUALIFIER}{text}\" or a path."
        )
    names = sorted({e.name for e in shipped_configs() if not e.is_base})
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"No config named {text!r} is installed and no such file exists.{hint} "
        f"Run `detcore list-configs` to see the installed configs."
    )


def _matches(name: str, dist: str | None, include_plugins: bool) -> list[ConfigEntry]:
    found = [e for e in shipped_configs(include_plugins) if e.name == name]
    if dist is not None:
        found = [e for e in found if normalize_dist(e.distribution) == normalize_dist(dist)]
    return found
