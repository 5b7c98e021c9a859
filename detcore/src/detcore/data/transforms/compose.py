"""Running a list of transforms in order; building them from config tables."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np


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


class RandomChoice:
    """Apply one of several sub-pipelines, drawn per sample (uniformly, or with probabilities ``prob``): e.g.
    DETR's training branch "resize" or "resize, crop, resize" (MMDetection's ``RandomChoice``)."""

    def __init__(self, transforms: Sequence[Sequence[Mapping[str, Any] | Callable]], prob: Sequence[float] | None = None) -> None:
        if not transforms or any(isinstance(branch, Mapping) for branch in transforms):
            raise ValueError("RandomChoice: transforms must be a non-empty list of pipelines (lists of transforms)")
        if prob is not None and (len(prob) != len(transforms) or abs(sum(prob) - 1.0) > 1e-6 or min(prob) < 0):
            raise ValueError(f"RandomChoice: prob must give one non-negative number per pipeline summing to 1, got {prob}")
        self.branches = [build_pipeline(branch) for branch in transforms]
        self.prob = None if prob is None else [float(p) for p in prob]

    def __call__(self, results: dict[str, Any]) -> Any:
        index = int(np.random.choice(len(self.branches), p=self.prob))
        return self.branches[index](results)

    def __repr__(self) -> str:
        return f"RandomChoice({self.branches!r}, prob={self.prob})"
