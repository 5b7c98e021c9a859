"""Multi-level anchor generator (MMDetection's ``AnchorGenerator``, with a torchvision-compatible mode)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from detcore.interfaces import PriorGenerator


def _pair_strides(strides: Sequence[int | Sequence[int]]) -> list[tuple[float, float]]:
    pairs = []
    for stride in strides:
        if isinstance(stride, (int, float)):
            pairs.append((stride, stride))
        else:
            if len(stride) != 2:
                raise ValueError(f"stride must be a number or a (w, h) pair, got {stride!r}")
            pairs.append((stride[0], stride[1]))
    return pairs


class AnchorGenerator(PriorGenerator):
    """Anchors (x1, y1, x2, y2) at every location of every level, location-major, base anchors inner.

    Per level the base anchors have sizes ``base_size * scale`` (``base_sizes`` default to the
    strides; ``scales`` or ``octave_base_scale * 2**(i / scales_per_octave)``) or, if ``sizes``
    is given, the absolute sizes ``sizes[level]``; each size is combined with every ratio h/w,
    area preserved. ``scale_major=True`` orders them ratio-outer / size-inner, which is also
    torchvision's order. Base anchors are centered at ``centers[level]`` or at
    ``center_offset * base_size``; ``round_base_anchors`` rounds them to integers as torchvision does.

    torchvision's ``AnchorGenerator(sizes, aspect_ratios)`` is reproduced by ``strides`` = the
    feature strides, ``sizes=sizes``, ``ratios=aspect_ratios[0]``, ``center_offset=0`` and
    ``round_base_anchors=True``. (torchvision's RetinaNet sizes, e.g. (32, 40, 50), are
    truncated to ints, so they differ from ``octave_base_scale=4, scales_per_octave=3``.)
    """

    def __init__(
        self,
        strides: Sequence[int | Sequence[int]],
        ratios: Sequence[float],
        scales: Sequence[float] | None = None,
        base_sizes: Sequence[float] | None = None,
        scale_major: bool = True,
        octave_base_scale: float | None = None,
        scales_per_octave: int | None = None,
        centers: Sequence[tuple[float, float]] | None = None,
        center_offset: float = 0.0,
        round_base_anchors: bool = False,
        sizes: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.strides = _pair_strides(strides)
        num_levels = len(self.strides)
        if centers is not None and len(centers) != num_levels:
            raise ValueError(f"AnchorGenerator: {len(centers)} centers for {num_levels} levels")
        if centers is not None and center_offset != 0:
            raise ValueError("AnchorGenerator: give either centers or center_offset, not both")
        if not 0.0 <= center_offset <= 1.0:
            raise ValueError(f"AnchorGenerator: center_offset must be in [0, 1], got {center_offset}")
        self.ratios = torch.tensor(list(ratios), dtype=torch.float32)
        self.scale_major = scale_major
        self.centers = centers
        self.center_offset = center_offset
        self.round_base_anchors = round_base_anchors
        self.base_sizes = list(base_sizes) if base_sizes is not None else [min(s) for s in self.strides]
        if len(self.base_sizes) != num_levels:
            raise ValueError(f"AnchorGenerator: {len(self.base_sizes)} base_sizes for {num_levels} levels")

        if sizes is not None:
            if scales is not None or octave_base_scale is not None:
                raise ValueError("AnchorGenerator: give sizes, or scales / octave_base_scale, not both")
            if len(sizes) != num_levels:
                raise ValueError(f"AnchorGenerator: {len(sizes)} size lists for {num_levels} levels")
            self.level_sizes = [torch.tensor(list(s), dtype=torch.float32) for s in sizes]
            self.scales = None
        else:
            if (scales is None) == (octave_base_scale is None):
                raise ValueError("AnchorGenerator: give exactly one of scales or octave_base_scale (with scales_per_octave)")
            if scales is not None:
                self.scales = torch.tensor(list(scales), dtype=torch.float32)
            else:
                if scales_per_octave is None:
                    raise ValueError("AnchorGenerator: octave_base_scale needs scales_per_octave")
                octave = [2 ** (i / scales_per_octave) for i in range(scales_per_octave)]
                self.scales = torch.tensor(octave, dtype=torch.float32) * octave_base_scale
            self.level_sizes = None
        self.base_anchors = [self._base_anchors(level) for level in range(num_levels)]

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def num_base_priors(self) -> list[int]:
        return [int(anchors.shape[0]) for anchors in self.base_anchors]

    @property
    def num_base_anchors(self) -> list[int]:
        """Alias of ``num_base_priors`` (MMDetection's name)."""
        return self.num_base_priors

    def _base_anchors(self, level: int) -> Tensor:
        """The (A, 4) anchors of one location of ``level``, centered at that level's center."""
        base_size = self.base_sizes[level]
        if self.centers is not None:
            x_center, y_center = self.centers[level]
        else:
            x_center = y_center = self.center_offset * base_size
        h_ratios = torch.sqrt(self.ratios)
        w_ratios = 1 / h_ratios
        if self.level_sizes is not None:
            multiplier, scales = 1.0, self.level_sizes[level]
        else:
            multiplier, scales = float(base_size), self.scales
        if self.scale_major:
            w_grid = multiplier * w_ratios[:, None] * scales[None, :]
            h_grid = multiplier * h_ratios[:, None] * scales[None, :]
        else:
            w_grid = multiplier * scales[:, None] * w_ratios[None, :]
            h_grid = multiplier * scales[:, None] * h_ratios[None, :]
        ws, hs = w_grid.reshape(-1), h_grid.reshape(-1)
        anchors = torch.stack([x_center - 0.5 * ws, y_center - 0.5 * hs, x_center + 0.5 * ws, y_center + 0.5 * hs], 1)
        return anchors.round() if self.round_base_anchors else anchors

    def single_level_grid_priors(
        self, featmap_size: tuple[int, int], level: int, dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Tensor:
        """Anchors (H * W * A, 4) of one level: row-major locations, the A base anchors inner."""
        feat_h, feat_w = int(featmap_size[0]), int(featmap_size[1])
        stride_w, stride_h = self.strides[level]
        base = self.base_anchors[level].to(device=device, dtype=dtype)
        shift_x = torch.arange(feat_w, device=device).to(dtype) * stride_w
        shift_y = torch.arange(feat_h, device=device).to(dtype) * stride_h
        yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
        xx, yy = xx.reshape(-1), yy.reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=1)
        return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4)

    def grid_priors(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        if len(featmap_sizes) != self.num_levels:
            raise ValueError(f"AnchorGenerator: {len(featmap_sizes)} feature maps for {self.num_levels} levels")
        return [self.single_level_grid_priors(size, i, dtype, device) for i, size in enumerate(featmap_sizes)]

    def valid_flags(
        self, featmap_sizes: Sequence[tuple[int, int]], pad_shape: tuple[int, int],
        device: torch.device | str = "cpu",
    ) -> list[Tensor]:
        """Per level, a bool (H * W * A,) mask of anchors whose location lies inside the padded image
        (batch padding can make a feature map larger than one image's ``pad_shape`` (h, w) needs)."""
        flags = []
        for level, (feat_h, feat_w) in enumerate(featmap_sizes):
            stride_w, stride_h = self.strides[level]
            valid_h = min(int(math.ceil(pad_shape[0] / stride_h)), int(feat_h))
            valid_w = min(int(math.ceil(pad_shape[1] / stride_w)), int(feat_w))
            flags.append(
                _grid_valid_flags((int(feat_h), int(feat_w)), (valid_h, valid_w), self.num_base_priors[level], device)
            )
        return flags


def _grid_valid_flags(
    featmap_size: tuple[int, int], valid_size: tuple[int, int], num_base: int, device: torch.device | str
) -> Tensor:
    """Flags (H * W * num_base,) that are True for locations in the top-left ``valid_size`` block."""
    feat_h, feat_w = featmap_size
    valid_y = torch.arange(feat_h, device=device) < valid_size[0]
    valid_x = torch.arange(feat_w, device=device) < valid_size[1]
    valid = (valid_y[:, None] & valid_x[None, :]).reshape(-1)
    return valid[:, None].expand(-1, num_base).reshape(-1)


def anchor_inside_flags(
    anchors: Tensor, valid_flags: Tensor, img_shape: tuple[int, int], allowed_border: float = 0.0
) -> Tensor:
    """Valid anchors lying within the image (h, w) extended by ``allowed_border`` pixels;
    a negative ``allowed_border`` keeps every valid anchor (MMDetection paper `000` §5.4)."""
    if allowed_border < 0:
        return valid_flags
    height, width = img_shape[0], img_shape[1]
    return (
        valid_flags
        & (anchors[:, 0] >= -allowed_border)
        & (anchors[:, 1] >= -allowed_border)
        & (anchors[:, 2] < width + allowed_border)
        & (anchors[:, 3] < height + allowed_border)
    )
