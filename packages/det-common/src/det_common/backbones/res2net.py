"""Res2Net (Gao et al. 2019, "Res2Net: A New Multi-scale Backbone Architecture"): a bottleneck whose 3x3 conv
is split into ``scales`` groups of ``width`` channels, each group's conv also reading the previous group's output,
so one block sees several receptive fields.

It is det-common's ResNet with another block (``Bottle2neck`` overrides the Bottleneck's middle) on the ResNet-D
stem and shortcuts (``deep_stem``, ``avg_down``), as MMDetection's ``Res2Net``; weight names are MMDetection's.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_common.backbones.resnet import Bottleneck, ResNet
from det_common.layers.conv import build_conv_layer
from det_common.layers.norm import build_norm_layer


class Bottle2neck(Bottleneck):
    """A Bottleneck whose middle is ``scales - 1`` 3x3 convs on channel groups of ``width``, chained
    hierarchically; the last group passes through (average-pooled in a strided stage's first block)."""

    def __init__(
        self, inplanes: int, planes: int, *args: Any, scales: int = 4, base_width: int = 26, base_channels: int = 64,
        stage_entry: bool = False, **kwargs: Any,
    ) -> None:
        if scales < 2:
            raise ValueError(f"Bottle2neck: scales must be >= 2 (scales=1 is a plain ResNet), got {scales}")
        if kwargs.get("groups", 1) != 1:
            raise ValueError("Bottle2neck: groups must be 1")
        self.scales = scales
        self.base_channels = base_channels
        #: a stage's first block reads each group on its own (no chaining); see ``middle``
        self.stage_entry = stage_entry
        super().__init__(inplanes, planes, *args, base_width=base_width, **kwargs)

    def mid_channels(self, planes: int, groups: int, base_width: int) -> int:
        self.width = math.floor(planes * base_width / self.base_channels)
        return self.width * self.scales

    def make_middle(
        self, width: int, stride: int, dilation: int, groups: int, conv_cfg: Mapping[str, Any] | None,
        norm_cfg: Mapping[str, Any],
    ) -> None:
        self.convs = nn.ModuleList(
            build_conv_layer(conv_cfg, self.width, self.width, 3, stride=stride, padding=dilation, dilation=dilation,
                             bias=False)
            for _ in range(self.scales - 1)
        )
        self.bns = nn.ModuleList(build_norm_layer(norm_cfg, self.width)[1] for _ in range(self.scales - 1))

    def middle(self, x: Tensor) -> Tensor:
        splits = torch.split(x, self.width, dim=1)
        outs: list[Tensor] = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.bns)):
            inp = splits[i] if i == 0 or self.stage_entry else outs[-1] + splits[i]
            outs.append(self.relu(norm(conv(inp.contiguous()))))
        last = splits[-1]
        if self.stage_entry and self.conv2_stride != 1:
            last = F.avg_pool2d(last, 3, self.conv2_stride, padding=1)
        return torch.cat([*outs, last], dim=1)


class Res2Net(ResNet):
    """Res2Net-50/101/152 (``scales`` x ``base_width``: 4 x 26 is "26w_4s"); always ResNet-D style and "pytorch"
    strides, as MMDetection builds it whatever the config says."""

    arch_settings = {depth: (Bottle2neck, blocks) for depth, (block, blocks) in ResNet.arch_settings.items()
                     if block is Bottleneck}

    def __init__(self, depth: int, scales: int = 4, base_width: int = 26, **kwargs: Any) -> None:
        for key, value in (("style", "pytorch"), ("deep_stem", True), ("avg_down", True)):
            if kwargs.setdefault(key, value) != value:
                raise ValueError(f"Res2Net: {key} must be {value!r} (MMDetection's Res2Net fixes it), "
                                 f"got {kwargs[key]!r}")
        self.scales = scales
        self.base_channels = kwargs.get("base_channels", 64)
        super().__init__(depth, base_width=base_width, **kwargs)

    def make_stage(self, index: int, block: type[nn.Module], *args: Any, **kwargs: Any) -> nn.Sequential:
        kwargs.update(scales=self.scales, base_channels=self.base_channels, first_block_kwargs={"stage_entry": True})
        layer = super().make_stage(index, block, *args, **kwargs)
        downsample = layer[0].downsample
        if downsample is not None and not isinstance(downsample[0], nn.AvgPool2d):
            # a stride-1 projection: MMDetection still puts a (1x1, identity) average pool first, so the conv and
            # norm keep the names downsample.1 / downsample.2
            layer[0].downsample = nn.Sequential(nn.Identity(), *downsample)
        return layer
