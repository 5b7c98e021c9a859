"""Loads ``detcore.plugins`` entry points into a pluggy manager; broken plugins are recorded, not fatal."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pluggy

from detcore.plugins import hookspecs
from detcore.registry.discovery import scan_entry_points
from detcore.registry.kinds import PLUGINS_GROUP


@dataclass(frozen=True)
class PluginStatus:
    name: str
    distribution: str
    version: str
    target: str
    error: str | None  # None when loaded

    @property
    def status(self) -> str:
        return "ok" if self.error is None else f"broken: {self.error}"


class PluginManager:
    """A pluggy manager plus the load status of every declared plugin."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("detcore")
        self.pm.add_hookspecs(hookspecs)
        self.statuses: list[PluginStatus] = []
        for record in scan_entry_points():
            if record.group != PLUGINS_GROUP:
                continue
            try:
                module = record.load()
                self.pm.register(module, name=f"{record.distribution}:{record.name}")
                error = None
            except Exception as exc:  # a broken plugin must not break detcore
                error = f"{type(exc).__name__}: {exc}"
            self.statuses.append(
                PluginStatus(record.name, record.distribution, record.version, record.target, error)
            )

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def broken(self) -> list[PluginStatus]:
        return [s for s in self.statuses if s.error is not None]

    def config_dirs(self) -> list[tuple[str, list[str]]]:
        """(plugin name, folders) from every plugin implementing ``detcore_config_dirs``."""
        out = []
        for impl in self.pm.hook.detcore_config_dirs.get_hookimpls():
            out.append((impl.plugin_name, list(impl.function() or [])))
        return out

    def env_checks(self) -> list[dict[str, Any]]:
        rows = []
        for result in self.pm.hook.detcore_env_checks():
            rows.extend(result or [])
        return rows


@lru_cache(maxsize=1)
def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (plugins are imported on first call)."""
    return PluginManager()
