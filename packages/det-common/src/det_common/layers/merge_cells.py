"""Merge cells: fuse two feature maps of possibly different sizes into one (NAS-FPN, Ghiasi et al. 2019;
NAS-FCOS, Wang et al. 2020). Each input may first pass a 3x3 ConvModule; both are brought to one size
(nearest upsampling, or zero padding to a multiple and max pooling), combined, then an optional output conv."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_common.layers.conv_module import ConvModule

_OUT_CONV = {"kernel_size": 3, "padding": 1, "bias": True}


def resize_to(x: Tensor, size: Sequence[int], upsample_mode: str = "nearest") -> Tensor:
    """``x`` (N, C, h, w) at ``size`` (H, W): upsampled with ``upsample_mode`` when smaller, max-pooled when larger
    (zero-padded, centred, to a multiple of ``size`` first); both sides must grow or both shrink."""
    h, w = x.shape[-2:]
    height, width = int(size[0]), int(size[1])
    if (h, w) == (height, width):
        return x
    if h <= height and w <= width:
        return F.interpolate(x, size=(height, width), mode=upsample_mode)
    if h < height or w < width:
        raise ValueError(f"resize_to: cannot bring a {h}x{w} map to {height}x{width} (one side grows, one shrinks)")
    pad_h = math.ceil(h / height) * height - h
    pad_w = math.ceil(w / width) * width - w
    if pad_h or pad_w:
        x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    kernel = (x.shape[-2] // height, x.shape[-1] // width)
    return F.max_pool2d(x, kernel_size=kernel, stride=kernel)


class BaseMergeCell(nn.Module, ABC):
    """Two inputs -> optional ``input1_conv`` / ``input2_conv`` (3x3 ConvModules with ``input_conv_cfg`` and
    ``input_norm_cfg``) -> the larger input's size (or ``out_size``) -> ``combine`` -> optional ``out_conv``.

    Submodule names follow MMCV's merge cells so MMDetection checkpoints load.
    """

    def __init__(
        self,
        fused_channels: int = 256,
        out_channels: int = 256,
        with_out_conv: bool = True,
        out_conv_cfg: Mapping[str, Any] = _OUT_CONV,
        out_norm_cfg: Mapping[str, Any] | None = None,
        out_conv_order: Sequence[str] = ("act", "conv", "norm"),
        with_input1_conv: bool = False,
        with_input2_conv: bool = False,
        input_conv_cfg: Mapping[str, Any] | None = None,
        input_norm_cfg: Mapping[str, Any] | None = None,
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        self.with_out_conv = with_out_conv
        self.upsample_mode = upsample_mode
        if with_out_conv:
            self.out_conv = ConvModule(fused_channels, out_channels, **dict(out_conv_cfg), norm_cfg=out_norm_cfg,
                                       order=out_conv_order)
        self.input1_conv = self._input_conv(out_channels, input_conv_cfg, input_norm_cfg) if with_input1_conv else nn.Identity()
        self.input2_conv = self._input_conv(out_channels, input_conv_cfg, input_norm_cfg) if with_input2_conv else nn.Identity()

    @staticmethod
    def _input_conv(channels: int, conv_cfg: Mapping[str, Any] | None, norm_cfg: Mapping[str, Any] | None) -> ConvModule:
        return ConvModule(channels, channels, 3, padding=1, bias=True, conv_cfg=conv_cfg, norm_cfg=norm_cfg)

    @abstractmethod
    def combine(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The binary operation of the cell on two maps of one size."""

    def forward(self, x1: Tensor, x2: Tensor, out_size: Sequence[int] | None = None) -> Tensor:
        if x1.shape[:2] != x2.shape[:2]:
            raise ValueError(f"{type(self).__name__}: inputs differ in batch or channels: {tuple(x1.shape)}, {tuple(x2.shape)}")
        if out_size is None:
            out_size = max(tuple(x1.shape[-2:]), tuple(x2.shape[-2:]))
        x1 = resize_to(self.input1_conv(x1), out_size, self.upsample_mode)
        x2 = resize_to(self.input2_conv(x2), out_size, self.upsample_mode)
        x = self.combine(x1, x2)
        return self.out_conv(x) if self.with_out_conv else x


class SumCell(BaseMergeCell):
    """Element-wise sum of the two inputs."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, **kwargs)

    def combine(self, x1: Tensor, x2: Tensor) -> Tensor:
        return x1 + x2


class ConcatCell(BaseMergeCell):
    """Channel concatenation of the two inputs (the output conv sees twice ``in_channels``)."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__(in_channels * 2, out_channels, **kwargs)

    def combine(self, x1: Tensor, x2: Tensor) -> Tensor:
        return torch.cat([x1, x2], dim=1)
