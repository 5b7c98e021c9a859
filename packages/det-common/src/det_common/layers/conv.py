"""Convolutions built from a config table: plain, weight-standardized (ConvWS), deformable (DCN, DCNv2) and
transposed (deconv)."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from detcore import ops

from det_common.layers.sac import ConvAWS2d, SAConv2d


class ConvWS2d(nn.Conv2d):
    """Conv2d with weight standardization (Qiao et al. 2019): each filter is centered and scaled to unit std."""

    def __init__(self, *args: Any, eps: float = 1e-5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps

    def standardized_weight(self) -> Tensor:
        """The filter bank with zero mean and unit (unbiased) std per output channel."""
        flat = self.weight.flatten(1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = flat.std(dim=1).view(-1, 1, 1, 1)
        return (self.weight - mean) / (std + self.eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


class DeformConv2d(nn.Module):
    """Deformable conv v1 (Dai et al. 2017) whose sampling offsets are given to ``forward``.

    Heads that compute their offsets from their own predictions use it: VarifocalNet's star-shaped
    box features, RepPoints' point sets. ``weight`` (and ``bias``) are named as in MMCV's ``DeformConv2d``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deform_groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: channels {in_channels}->{out_channels} not divisible by groups={groups}")
        if in_channels % deform_groups:
            raise ValueError(f"{type(self).__name__}: in_channels {in_channels} not divisible by deform_groups={deform_groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deform_groups = deform_groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform init of the weight in +-1/sqrt(fan_in) like MMCV, zero bias."""
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        """``offset``: (N, 2 * deform_groups * kh * kw, H', W') as (dy, dx) per kernel position, row-major."""
        return ops.deform_conv2d(x, offset, self.weight, self.bias, self.stride, self.padding, self.dilation, mask=mask)


class DeformConv2dPack(DeformConv2d):
    """Deformable conv v1 (Dai et al. 2017) that predicts its own offsets with ``conv_offset``.

    Parameter names follow MMCV (``weight``, ``conv_offset.weight``) so DCN checkpoints load;
    ``conv_offset`` starts at zero so the layer starts as a plain convolution.
    """

    _modulated = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], *args: Any,
                 deform_groups: int = 1, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, *args, deform_groups=deform_groups, **kwargs)
        per_position = 3 if self._modulated else 2
        self.conv_offset = nn.Conv2d(
            in_channels,
            deform_groups * per_position * self.kernel_size[0] * self.kernel_size[1],
            kernel_size=self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def offset_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Sampling offsets (and DCNv2 modulation masks) predicted from ``x``."""
        return self.conv_offset(x), None

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        offset, mask = self.offset_and_mask(x)
        return super().forward(x, offset, mask)


class ModulatedDeformConv2dPack(DeformConv2dPack):
    """Modulated deformable conv v2 (Zhu et al. 2019): offsets plus a sigmoid mask from ``conv_offset``."""

    _modulated = True

    def __init__(self, *args: Any, bias: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, bias=bias, **kwargs)

    def offset_and_mask(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        out = self.conv_offset(x)
        offset_y_x_a, offset_y_x_b, mask = torch.chunk(out, 3, dim=1)
        return torch.cat([offset_y_x_a, offset_y_x_b], dim=1), mask.sigmoid()


CONV_LAYERS: dict[str, type[nn.Module]] = {
    "Conv": nn.Conv2d,
    "Conv2d": nn.Conv2d,
    "ConvWS": ConvWS2d,
    "DCN": DeformConv2dPack,
    "DCNv2": ModulatedDeformConv2dPack,
    "deconv": nn.ConvTranspose2d,
    "ConvAWS": ConvAWS2d,
    "SAC": SAConv2d,
}


def build_conv_layer(cfg: Mapping[str, Any] | None, *args: Any, **kwargs: Any) -> nn.Module:
    """Build the convolution of ``cfg["type"]`` (None means Conv2d); extra cfg keys go to the constructor."""
    if cfg is None:
        return nn.Conv2d(*args, **kwargs)
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise TypeError(f"build_conv_layer: cfg must be None or a mapping with a 'type', got {cfg!r}")
    layer_kwargs = dict(cfg)
    conv_type = layer_kwargs.pop("type")
    if conv_type not in CONV_LAYERS:
        raise KeyError(f"build_conv_layer: unknown conv type {conv_type!r}; known: {sorted(CONV_LAYERS)}")
    layer_kwargs.pop("fallback_on_stride", None)
    layer_kwargs.update(kwargs)
    return CONV_LAYERS[conv_type](*args, **layer_kwargs)
