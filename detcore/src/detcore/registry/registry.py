"""The component registry: (kind, name) -> class, from entry points, imported on first build."""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from detcore.errors import (
    ComponentLoadError,
    ConfigError,
    DetcoreError,
    DuplicateComponentError,
    UnknownComponentError,
)
from detcore.registry.discovery import EntryPointRecord, normalize_dist, scan_entry_points
from detcore.registry.kinds import GROUP_PREFIX, KIND_DESCRIPTIONS, kind_of_group
from detcore.registry.preferences import ENV_VAR, preferred_distribution

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

QUALIFIER = "::"  # "det-common::FPN" picks one distribution's FPN


@dataclass(frozen=True)
class ComponentSpec:
    """A registered component as the metadata describes it (nothing imported)."""

    kind: str
    name: str
    target: str
    distribution: str
    version: str

    @classmethod
    def from_record(cls, record: EntryPointRecord) -> "ComponentSpec":
        kind = kind_of_group(record.group)
        if kind is None:
            raise ValueError(f"Entry-point group {record.group!r} does not declare components")
        return cls(kind, record.name, record.target, record.distribution, record.version)

    def load(self) -> Any:
        """Import the target; a failure names the distribution and what to do."""
        try:
            return EntryPointRecord(
                GROUP_PREFIX + self.kind, self.name, self.target, self.distribution, self.version
            ).load()
        except Exception as exc:  # any import-time failure of a plugin module
            raise ComponentLoadError(
                f"Component {self.kind}:{self.name} from distribution {self.distribution} "
                f"{self.version} failed to load ({self.target}): {type(exc).__name__}: {exc}. "
                f"Reinstall or fix {self.distribution}, or uninstall it "
                f"(pip uninstall {self.distribution}) to use the other components."
            ) from exc


@lru_cache(maxsize=1)
def _catalog() -> dict[str, dict[str, str]]:
    """Which first-party distribution provides well-known component names (for hints)."""
    from importlib.resources import files

    text = files("detcore.registry").joinpath("catalog.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def kinds() -> list[str]:
    """Every component kind: the groups ``detcore.<kind>`` installed distributions declare, plus
    the described first-party kinds and the catalog's kinds (so that an empty kind still lists
    and a first-party name that is not installed still gets its install hint)."""
    declared = {kind_of_group(r.group) for r in scan_entry_points()}
    declared.discard(None)
    return sorted(declared | set(KIND_DESCRIPTIONS) | set(_catalog()))


def describe_kind(kind: str) -> str:
    """One line on what a kind holds; a kind a family introduced is described by who declares it."""
    if kind in KIND_DESCRIPTIONS:
        return KIND_DESCRIPTIONS[kind]
    dists = sorted({r.distribution for r in scan_entry_points() if kind_of_group(r.group) == kind})
    if dists:
        return f"declared by {', '.join(dists)}"
    provider = sorted(set(_catalog().get(kind, {}).values()))
    return f"provided by {', '.join(provider)} (not installed)" if provider else ""


def check_kind(kind: str) -> None:
    """Raise a named error for a kind no installed distribution declares (listing the known ones)."""
    known = kinds()
    if kind not in known:
        close = difflib.get_close_matches(kind, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownComponentError(
            f"Unknown component kind {kind!r}.{hint} Known kinds: {', '.join(known)}. A kind is "
            f"any entry-point group {GROUP_PREFIX}<kind> an installed distribution declares; "
            f"install the distribution that provides {kind!r} or declare the group in its "
            "pyproject.toml."
        )


def components(kind: str | None = None) -> list[ComponentSpec]:
    """All registered components (of one kind), from metadata only."""
    if kind is not None:
        check_kind(kind)
    specs = []
    for record in scan_entry_points():
        k = kind_of_group(record.group)
        if k is not None and (kind is None or k == kind):
            specs.append(ComponentSpec.from_record(record))
    return sorted(specs, key=lambda s: (s.kind, s.name, s.distribution))


def duplicates() -> dict[tuple[str, str], list[ComponentSpec]]:
    """(kind, name) pairs registered by more than one distribution."""
    by_key: dict[tuple[str, str], list[ComponentSpec]] = {}
    for spec in components():
        by_key.setdefault((spec.kind, spec.name), []).append(spec)
    return {key: specs for key, specs in by_key.items() if len(specs) > 1}


def resolve(kind: str, name: str) -> ComponentSpec:
    """The one spec for ``name`` (or ``dist::name``), else a named error with suggestions."""
    check_kind(kind)
    dist_filter = None
    if QUALIFIER in name:
        dist_filter, name = name.split(QUALIFIER, 1)
    candidates = [s for s in components(kind) if s.name == name]
    if dist_filter is not None:
        candidates = [
            s for s in candidates if normalize_dist(s.distribution) == normalize_dist(dist_filter)
        ]
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        return _preferred(kind, name, candidates)
    raise UnknownComponentError(_unknown_message(kind, name, dist_filter))


def _preferred(kind: str, name: str, candidates: list[ComponentSpec]) -> ComponentSpec:
    """The candidate the user's stated preference names (see detcore.registry.preferences)."""
    listing = "; ".join(f"{s.distribution} {s.version} ({s.target})" for s in candidates)
    preference = preferred_distribution(kind, name)
    if preference is not None:
        dist, source = preference
        chosen = [s for s in candidates if normalize_dist(s.distribution) == normalize_dist(dist)]
        if chosen:
            return chosen[0]
        raise DuplicateComponentError(
            f"{kind}:{name} is registered by more than one distribution ({listing}) and the preference in {source} "
            f"names {dist!r}, which is not one of them. Correct the preference "
            f"(detcore config prefer {kind}:{name} DISTRIBUTION)."
        )
    first = candidates[0].distribution
    raise DuplicateComponentError(
        f"{kind}:{name} is registered by more than one distribution: {listing}. Choose one once for every "
        f"config with `detcore config prefer {kind}:{name} {first}` (or {ENV_VAR}=\"{kind}:{name}={first}\"), "
        f"or in one config with type = \"{first}{QUALIFIER}{name}\", or uninstall the one you do not want."
    )


def _unknown_message(kind: str, name: str, dist_filter: str | None) -> str:
    names = sorted({s.name for s in components(kind)})
    where = f" from distribution {dist_filter}" if dist_filter else ""
    msg = f"Unknown {kind} component {name!r}{where}."
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        msg += f" Did you mean: {', '.join(close)}?"
    provider = _catalog().get(kind, {}).get(name)
    if provider:
        msg += f" It is provided by {provider}: pip install {provider}."
    else:
        other_kinds = sorted({s.kind for s in components() if s.name == name})
        if other_kinds:
            msg += f" A component of that name exists as kind {', '.join(other_kinds)}."
    if not close and not provider:
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        msg += f" Installed {kind}: {shown or '(none)'}."
    msg += " Run `detcore list-components --kind " + kind + "` to see what is installed."
    return msg


def get_component(kind: str, name: str) -> Any:
    """The class (or function) registered as ``kind:name``, imported now."""
    return resolve(kind, name).load()


def build(kind: str, cfg: Any, **defaults: Any) -> Any:
    """Build ``cfg["type"]`` of ``kind`` with the other keys as keyword arguments.

    ``defaults`` fill keys the config does not set. Not recursive: a component builds its
    own children (it knows their kind and when it has the context, e.g. an optimizer's
    parameters). A ``cfg`` that is not a mapping (already built, or None) is returned as is.
    """
    if cfg is None or not isinstance(cfg, Mapping):
        return cfg
    if "type" not in cfg:
        raise ConfigError(
            f"Cannot build a {kind} component from {dict(cfg)!r}: the table has no 'type' key. "
            f"Add type = \"<name>\" (see `detcore list-components --kind {kind}`)."
        )
    kwargs = {**defaults, **{k: v for k, v in cfg.items() if k != "type"}}
    spec = resolve(kind, str(cfg["type"]))
    target = spec.load()
    _check_kwargs(spec, target, kwargs)
    try:
        return target(**kwargs)
    except DetcoreError:
        raise
    except (TypeError, ValueError, RuntimeError) as exc:  # a value of a wrong type or range, found by the component
        shown = ", ".join(f"{k} = {v!r}" for k, v in cfg.items() if not isinstance(v, (Mapping, list)))
        raise ConfigError(
            f"Building {kind}:{spec.name} ({spec.target}) from the table with {shown} failed: "
            f"{type(exc).__name__}: {exc}. Check the types and ranges of that table's values."
        ) from exc


def _check_kwargs(spec: ComponentSpec, target: Any, kwargs: dict[str, Any]) -> None:
    """Reject config keys the component does not accept, with close matches."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for key in kwargs:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"Unknown config key {key!r} for {spec.kind}:{spec.name} "
                f"({spec.distribution}).{hint} Accepted keys: {', '.join(accepted)}."
            )
