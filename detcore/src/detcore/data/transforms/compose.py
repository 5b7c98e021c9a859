"""Running a list of transforms in order; building them from config tables."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence


def build_transform(cfg: Mapping[str, Any] | Callable) -> Callable:
    """A transform from a config table ``{type = "Resize", ...}`` (via the registry) or as is."""
    if not isinstance(cfg, Mapping):
        return cfg
    from detcore.registry import build

    return build("transforms", cfg)


def build_pipeline(cfgs: Sequence[Mapping[str, Any] | Callable] | None) -> "Compose":
    """A ``Compose`` of the transforms listed in a config."""
    return Compose([build_transform(c) for c in (cfgs or [])])


class Compose:
    """Apply transforms in order; a transform returning None drops the sample (returns None)."""

    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, results: dict[str, Any]) -> Any:
        for transform in self.transforms:
            results = transform(results)
            if results is None:
                return None
        return results

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"
