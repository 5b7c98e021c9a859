"""SumNeck: FPN's lateral and top-down pathway (Lin et al., "Feature Pyramid Networks for Object
Detection", 2017) without the 3x3 output convolutions; extra levels by stride-2 max pooling."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from detcore.interfaces import Neck


class SumNeck(Neck):
    """``num_outs`` maps of ``out_channels`` from the backbone levels ``in_channels[start_level:]``."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int, start_level: int = 0) -> None:
        super().__init__()
        used = list(in_channels)[start_level:]
        if not used or num_outs < len(used):
            raise ValueError(f"SumNeck: num_outs ({num_outs}) must be >= the {len(used)} levels used from start_level")
        self.start_level = start_level
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in used)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, ...]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, feats[self.start_level :])]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
        outs = list(laterals)
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)
