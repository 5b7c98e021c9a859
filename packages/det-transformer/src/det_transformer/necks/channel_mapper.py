"""ChannelMapper: maps each backbone level to a common channel count, optionally adding strided levels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from det_common.layers import ConvModule
from detcore.interfaces import Neck

class ChannelMapper(Neck):
    """One conv per input level to ``out_channels``; with ``num_outs`` above the number of inputs, stride-2
    3x3 convs add coarser levels, the first on the last input, the next ones on the previous output (the
    multi-scale input of Deformable DETR, Zhu et al. 2021). Parameter names as MMDetection's ``ChannelMapper``;
    unlike it, no activation unless ``act_cfg`` is given (the DETR family uses none, and TOML has no null).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, kernel_size: int = 3,
                 conv_cfg: Mapping[str, Any] | None = None, norm_cfg: Mapping[str, Any] | None = None,
                 act_cfg: Mapping[str, Any] | None = None, bias: bool | str = "auto",
                 num_outs: int | None = None) -> None:
        super().__init__()
        in_channels = list(in_channels)
        num_outs = len(in_channels) if num_outs is None else int(num_outs)
        if num_outs < len(in_channels):
            raise ValueError(f"ChannelMapper: num_outs ({num_outs}) must be >= the number of inputs ({len(in_channels)})")
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg, bias=bias)
        self.convs = nn.ModuleList([
            ConvModule(c, out_channels, kernel_size, padding=(kernel_size - 1) // 2, **common) for c in in_channels
        ])
        self.extra_convs = nn.ModuleList([
            ConvModule(in_channels[-1] if i == 0 else out_channels, out_channels, 3, stride=2, padding=1, **common)
            for i in range(num_outs - len(in_channels))
        ]) if num_outs > len(in_channels) else None
        self.in_channels = in_channels

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(feats) != len(self.convs):
            raise ValueError(f"ChannelMapper expects {len(self.convs)} feature levels, got {len(feats)}")
        outs = [conv(feat) for conv, feat in zip(self.convs, feats)]
        for i, conv in enumerate(self.extra_convs or ()):
            outs.append(conv(feats[-1] if i == 0 else outs[-1]))
        return tuple(outs)
