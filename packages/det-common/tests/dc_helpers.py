"""Shared test helpers for det-common: seeded random boxes."""

from __future__ import annotations

import torch


def random_boxes(n: int, size: float = 100.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` valid xyxy boxes with corners in [0, size] and sides at least 1."""
    xy = torch.rand(n, 2, generator=generator) * size * 0.8
    wh = torch.rand(n, 2, generator=generator) * size * 0.5 + 1.0
    return torch.cat([xy, xy + wh], dim=1)
