"""HourglassNet (Newell et al., "Stacked Hourglass Networks for Human Pose Estimation"), the backbone of
CornerNet and CentripetalNet: a stem to stride 4, then stacked encoder-decoder "hourglasses" of residual
blocks, each stack's output feeding the next through intermediate supervision convs. Hourglass-104 is the
two-stack network with stage channels (256, 256, 384, 384, 384, 512) and blocks (2, 2, 2, 2, 2, 4).
Parameter names follow MMDetection's ``HourglassNet``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from det_common.backbones.resnet import BasicBlock
from det_common.layers import ConvModule, build_norm_layer
from detcore.interfaces import Backbone

_BN = {"type": "BN", "requires_grad": True}


def residual_layer(inplanes: int, planes: int, num_blocks: int, stride: int = 1,
                   norm_cfg: Mapping[str, Any] = _BN, downsample_first: bool = True) -> nn.Sequential:
    """``num_blocks`` (at least one) basic blocks from ``inplanes`` to ``planes``; the one that changes width or
    stride (the first, or with ``downsample_first=False`` the last, as the hourglass's decoder side) gets a 1x1
    projection shortcut."""
    downsample = None
    if stride != 1 or inplanes != planes:
        downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                   build_norm_layer(norm_cfg, planes)[1])
    changing = BasicBlock(inplanes, planes, stride=stride, downsample=downsample, norm_cfg=norm_cfg)
    if downsample_first:
        return nn.Sequential(changing, *(BasicBlock(planes, planes, norm_cfg=norm_cfg) for _ in range(num_blocks - 1)))
    return nn.Sequential(*(BasicBlock(inplanes, inplanes, norm_cfg=norm_cfg) for _ in range(num_blocks - 1)), changing)


class HourglassModule(nn.Module):
    """One hourglass level: a full-resolution branch (``up1``) plus a half-resolution branch (``low1``, the
    next level or the innermost blocks as ``low2``, ``low3`` back to this width) upsampled (nearest) and added."""

    def __init__(self, depth: int, stage_channels: Sequence[int], stage_blocks: Sequence[int],
                 norm_cfg: Mapping[str, Any] = _BN) -> None:
        super().__init__()
        channels, next_channels = stage_channels[0], stage_channels[1]
        blocks, next_blocks = stage_blocks[0], stage_blocks[1]
        self.up1 = residual_layer(channels, channels, blocks, norm_cfg=norm_cfg)
        self.low1 = residual_layer(channels, next_channels, blocks, stride=2, norm_cfg=norm_cfg)
        if depth > 1:
            self.low2: nn.Module = HourglassModule(depth - 1, stage_channels[1:], stage_blocks[1:], norm_cfg)
        else:
            self.low2 = residual_layer(next_channels, next_channels, next_blocks, norm_cfg=norm_cfg)
        self.low3 = residual_layer(next_channels, channels, blocks, norm_cfg=norm_cfg, downsample_first=False)

    def forward(self, x: Tensor) -> Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(x)))
        return up1 + F.interpolate(low, size=up1.shape[2:], mode="nearest")


class HourglassNet(Backbone):
    """Stacked hourglasses; returns every stack's output (``feat_channel`` channels, stride 4), so heads can
    supervise each (CornerNet trains on both stacks and predicts from the last).

    ``downsample_times`` halvings per hourglass (needs ``len(stage_channels) > downsample_times``).
    """

    def __init__(self, downsample_times: int = 5, num_stacks: int = 2,
                 stage_channels: Sequence[int] = (256, 256, 384, 384, 384, 512),
                 stage_blocks: Sequence[int] = (2, 2, 2, 2, 2, 4), feat_channel: int = 256,
                 norm_cfg: Mapping[str, Any] = _BN) -> None:
        super().__init__()
        if num_stacks < 1:
            raise ValueError(f"HourglassNet: num_stacks must be >= 1, got {num_stacks}")
        if len(stage_channels) != len(stage_blocks) or len(stage_channels) <= downsample_times:
            raise ValueError(f"HourglassNet: stage_channels {list(stage_channels)} and stage_blocks "
                             f"{list(stage_blocks)} need the same length, greater than downsample_times={downsample_times}")
        self.num_stacks = num_stacks
        channels = stage_channels[0]
        self.out_channels = (feat_channel,) * num_stacks
        self.stem = nn.Sequential(
            ConvModule(3, channels // 2, 7, stride=2, padding=3, norm_cfg=norm_cfg),
            residual_layer(channels // 2, channels, 1, stride=2, norm_cfg=norm_cfg),
        )
        self.hourglass_modules = nn.ModuleList(
            HourglassModule(downsample_times, stage_channels, stage_blocks, norm_cfg) for _ in range(num_stacks))
        self.inters = residual_layer(channels, channels, num_stacks - 1, norm_cfg=norm_cfg)
        self.conv1x1s = nn.ModuleList(
            ConvModule(channels, channels, 1, norm_cfg=norm_cfg, act_cfg=None) for _ in range(num_stacks - 1))
        self.out_convs = nn.ModuleList(
            ConvModule(channels, feat_channel, 3, padding=1, norm_cfg=norm_cfg) for _ in range(num_stacks))
        self.remap_convs = nn.ModuleList(
            ConvModule(feat_channel, channels, 1, norm_cfg=norm_cfg, act_cfg=None) for _ in range(num_stacks - 1))
        self.relu = nn.ReLU(inplace=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        inter = self.stem(images)
        outs = []
        for i in range(self.num_stacks):
            out = self.out_convs[i](self.hourglass_modules[i](inter))
            outs.append(out)
            if i < self.num_stacks - 1:
                inter = self.inters[i](self.relu(self.conv1x1s[i](inter) + self.remap_convs[i](out)))
        return tuple(outs)
