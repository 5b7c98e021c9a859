"""Multi-level point generator for anchor-free heads (FCOS, ATSS-style centers)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from det_common.priors.anchor_generator import _grid_valid_flags, _pair_strides
from detcore.interfaces import PriorGenerator


class MlvlPointGenerator(PriorGenerator):
    """Points ((x + offset) * stride_w, (y + offset) * stride_h) for every location of every level.

    ``offset=0.5`` puts points at cell centers (MMDetection's FCOS, equal to ``stride // 2``
    for even strides); ``offset=0`` puts them at ``k * stride``, the anchor centers that
    torchvision's FCOS uses. ``with_stride=True`` appends (stride_w, stride_h) columns.
    """

    def __init__(self, strides: Sequence[int | Sequence[int]], offset: float = 0.5) -> None:
        self.strides = _pair_strides(strides)
        self.offset = offset

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        return [1 for _ in self.strides]

    def single_level_grid_priors(
        self, featmap_size: tuple[int, int], level: int, dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu", with_stride: bool = False,
    ) -> Tensor:
        """Points (H * W, 2) of one level in row-major order, or (H * W, 4) with strides."""
        feat_h, feat_w = int(featmap_size[0]), int(featmap_size[1])
        stride_w, stride_h = self.strides[level]
        shift_x = ((torch.arange(feat_w, device=device) + self.offset) * stride_w).to(dtype)
        shift_y = ((torch.arange(feat_h, device=device) + self.offset) * stride_h).to(dtype)
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        if not with_stride:
            return torch.stack([xx, yy], dim=-1)
        return torch.stack([xx, yy, torch.full_like(xx, stride_w), torch.full_like(yy, stride_h)], dim=-1)

    def grid_priors(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        with_stride: bool = False,
    ) -> list[Tensor]:
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f"MlvlPointGenerator: {len(featmap_sizes)} feature maps for {self.num_levels} levels")
        return [
            self.single_level_grid_priors(size, i, dtype, device, with_stride) for i, size in enumerate(featmap_sizes)
        ]

    def valid_flags(
        self, featmap_sizes: Sequence[tuple[int, int]], pad_shape: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Per level, a bool (H * W,) mask of points inside the padded image ``pad_shape`` (h, w)."""
        flags = []
        for level, (feat_h, feat_w) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[level]
            valid_h = min(int(math.ceil(pad_shape[0] / stride_h)), int(feat_h))
            valid_w = min(int(math.ceil(pad_shape[1] / stride_w)), int(feat_w))
            flags.append(_grid_valid_flags((int(feat_h), int(feat_w)), (valid_h, valid_w), 1, device))
        return flags
