"""Shared helpers for the ops tests: a scalar zero-padded bilinear sampler used by the naive reference loops."""

import math

import pytest
import torch


def _bilinear_zero(image: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """Bilinear sample of image [C, H, W] at pixel (y, x); corners outside the map read 0."""
    _, height, width = image.shape
    y0, x0 = math.floor(y), math.floor(x)
    value = torch.zeros(image.shape[0], dtype=image.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                value = value + wy * wx * image[:, yy, xx]
    return value


@pytest.fixture
def bilinear_zero():
    return _bilinear_zero


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
