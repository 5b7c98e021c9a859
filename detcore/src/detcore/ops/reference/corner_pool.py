"""Reference corner pooling (CornerNet): running maxima along one spatial axis and direction."""

from __future__ import annotations

import torch
from torch import Tensor

from detcore.ops.checks import check_choice, check_tensor

# mode -> (dim, whether the max runs from the far end): top/left look at k >= i, bottom/right at k <= i.
CORNER_POOL_MODES = {"top": (2, True), "bottom": (2, False), "left": (3, True), "right": (3, False)}


def corner_pool(input: Tensor, mode: str) -> Tensor:
    """top: out[..., i, j] = max_{k >= i} in[..., k, j]; bottom: max_{k <= i}; left: max_{k >= j} in[..., i, k]; right: max_{k <= j}."""
    input = check_tensor("corner_pool", "input", input, 4, "[N, C, H, W]")
    check_choice("corner_pool", "mode", mode, tuple(CORNER_POOL_MODES))
    dim, reverse = CORNER_POOL_MODES[mode]
    if input.shape[dim] == 0:
        return input.clone()
    if reverse:
        return torch.cummax(input.flip(dim), dim=dim).values.flip(dim)
    return torch.cummax(input, dim=dim).values
