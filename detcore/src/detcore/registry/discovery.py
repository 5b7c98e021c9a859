"""Reads the installed distributions' entry points once; imports nothing else.

Everything `detcore list-components` shows comes from package metadata alone, so listing
never imports torch or any plugin module.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import re
from dataclasses import dataclass
from functools import lru_cache

from detcore.registry.kinds import GROUP_PREFIX


def normalize_dist(name: str) -> str:
    """PEP 503 normalization, so ``det_common`` and ``det-common`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class EntryPointRecord:
    """One ``detcore.*`` entry point with the distribution that declares it."""

    group: str
    name: str
    target: str
    distribution: str
    version: str

    def load(self) -> object:
        """Import ``module:attr`` (attributes may be dotted)."""
        module_name, _, attr = self.target.partition(":")
        obj: object = importlib.import_module(module_name.strip())
        for part in attr.strip().split(".") if attr.strip() else []:
            obj = getattr(obj, part)
        return obj


@lru_cache(maxsize=1)
def scan_entry_points() -> tuple[EntryPointRecord, ...]:
    """Every ``detcore.*`` entry point of every installed distribution (first on sys.path wins)."""
    records: list[EntryPointRecord] = []
    seen: set[str] = set()
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        key = normalize_dist(name)
        if key in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group.startswith(GROUP_PREFIX):
                records.append(EntryPointRecord(ep.group, ep.name, ep.value, name, dist.version))
    return tuple(records)


def refresh() -> None:
    """Forget the cached scan (after installing or removing a distribution in-process)."""
    scan_entry_points.cache_clear()
    md.distributions  # noqa: B018 - metadata itself is not cached by importlib
    importlib.invalidate_caches()
