"""Cascade RPN's adaptive convolution (Vu et al. 2019, "Cascade RPN"): a 3x3 convolution whose sampling
grid follows each location's anchor, so that features stay aligned with the boxes they regress."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from det_common.layers.conv import DeformConv2d

ADAPT_TYPES = ("dilation", "offset")


class AdaptiveConv(nn.Module):
    """``adapt_type = "dilation"``: a plain 3x3 conv with ``dilation`` (uniform anchors of the first stage);
    ``"offset"``: a deformable 3x3 conv (no bias) sampling where :func:`anchor_offsets` says. The layer is
    ``conv`` in both cases (MMDetection's weight names)."""

    def __init__(self, in_channels: int, out_channels: int, adapt_type: str = "dilation", dilation: int = 3) -> None:
        super().__init__()
        if adapt_type not in ADAPT_TYPES:
            raise ValueError(f"AdaptiveConv: adapt_cfg type must be one of {ADAPT_TYPES}, got {adapt_type!r}")
        self.adapt_type = adapt_type
        self.conv: nn.Module
        if adapt_type == "offset":
            self.conv = DeformConv2d(in_channels, out_channels, 3, padding=1, bias=False)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        nn.init.normal_(self.conv.weight, std=0.01)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor, offset: Tensor | None = None) -> Tensor:
        if self.adapt_type == "offset":
            if offset is None:
                raise ValueError("AdaptiveConv(adapt_type='offset') needs the anchors' offsets")
            return self.conv(x, offset)
        return self.conv(x)


def anchor_offsets(anchors: Tensor, stride: float, featmap_size: tuple[int, int]) -> Tensor:
    """Offsets (N, 18, H, W) of a 3x3 deformable conv (dilation 1) that move its taps from the regular grid
    onto each anchor: the center tap to the anchor's center, the others to its sides and corners.

    ``anchors``: (N, H*W, 4) boxes in pixels, one per location in row-major order.
    """
    height, width = featmap_size
    if anchors.shape[1] != height * width:
        raise ValueError(f"anchor_offsets: {anchors.shape[1]} anchors for a {height}x{width} map (one per location)")
    ys, xs = torch.meshgrid(
        torch.arange(height, device=anchors.device, dtype=anchors.dtype),
        torch.arange(width, device=anchors.device, dtype=anchors.dtype),
        indexing="ij",
    )
    grid = torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)  # (H*W, 2) as (x, y)
    center_shift = (anchors[..., :2] + anchors[..., 2:]) / 2 / stride - grid  # (N, H*W, 2)
    tap_spacing = (anchors[..., 2:] - anchors[..., :2]) / stride / 2 - 1  # (N, H*W, 2): half size minus dilation
    taps = torch.arange(-1, 2, device=anchors.device, dtype=anchors.dtype)
    tap_y, tap_x = (t.reshape(-1) for t in torch.meshgrid(taps, taps, indexing="ij"))  # (9,) row-major
    dx = tap_spacing[..., :1] * tap_x + center_shift[..., :1]
    dy = tap_spacing[..., 1:] * tap_y + center_shift[..., 1:]
    offsets = torch.stack([dy, dx], dim=-1).reshape(anchors.shape[0], height * width, 18)
    return offsets.permute(0, 2, 1).reshape(anchors.shape[0], 18, height, width).contiguous()
