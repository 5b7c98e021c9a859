"""Shared helpers for the det-ops-cuda parity tests: random boxes/RoIs and tolerance checks."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

det_backend = pytest.importorskip("det_ops_cuda.backend", reason="det-ops-cuda is not installed")


def random_boxes(n: int, size: float = 100.0, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32) -> Tensor:
    """n xyxy boxes with corners in [0, size) and sides up to size/3."""
    xy = torch.rand(n, 2, generator=generator, dtype=dtype) * size
    wh = torch.rand(n, 2, generator=generator, dtype=dtype) * size / 3
    return torch.cat([xy, xy + wh], dim=1)


def random_rois(k: int, batch: int, size: float, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float32) -> Tensor:
    """k RoIs [batch_index, x1, y1, x2, y2] inside roughly [-size/10, 1.1*size)."""
    idx = torch.randint(0, batch, (k, 1), generator=generator).to(dtype)
    boxes = random_boxes(k, size * 1.2, generator, dtype) - size * 0.1
    return torch.cat([idx, boxes], dim=1)


def assert_close(actual: Tensor, expected: Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
