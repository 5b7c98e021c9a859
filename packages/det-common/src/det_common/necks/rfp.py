"""DetectoRS's recursive feature pyramid (Qiao et al. 2021, "DetectoRS"): an FPN whose outputs are fed back
into a second backbone, the "looking twice" of the paper, through atrous spatial pyramid pooling (ASPP)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detcore.registry import build

from det_common.necks.fpn import FPN


class ASPP(nn.Module):
    """Parallel convs at ``dilations`` (3x3, 1x1 where the dilation is 1) with ReLU, the last one on the
    globally pooled map and broadcast; their outputs are concatenated (``len(dilations) * out_channels``)."""

    def __init__(self, in_channels: int, out_channels: int, dilations: Sequence[int] = (1, 3, 6, 1)) -> None:
        super().__init__()
        if dilations[-1] != 1:
            raise ValueError(f"ASPP: the last (global) branch must have dilation 1, got {tuple(dilations)}")
        self.aspp = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 3 if d > 1 else 1, dilation=d, padding=d if d > 1 else 0)
            for d in dilations
        )
        for conv in self.aspp:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        outs = [F.relu(conv(x)) for conv in self.aspp[:-1]]
        pooled = F.relu(self.aspp[-1](F.adaptive_avg_pool2d(x, 1)))
        return torch.cat([*outs, pooled.expand_as(outs[-1])], dim=1)


class RFP(FPN):
    """FPN run ``rfp_steps`` times: each later step feeds the pyramid (ASPP of levels 2+) into a fresh
    ``rfp_backbone`` (a DetectoRS ResNet with ``rfp_inplanes``) run on the image, and mixes its FPN
    outputs with the previous ones through a learned per-pixel sigmoid weight (``rfp_weight``).

    Its inputs are the image followed by the backbone's levels (the backbone's ``output_img``).
    """

    def __init__(
        self,
        rfp_steps: int,
        rfp_backbone: Mapping[str, Any],
        aspp_out_channels: int,
        aspp_dilations: Sequence[int] = (1, 3, 6, 1),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if rfp_steps < 1:
            raise ValueError(f"RFP: rfp_steps must be at least 1, got {rfp_steps}")
        self.rfp_steps = rfp_steps
        self.rfp_modules = nn.ModuleList(build("backbones", dict(rfp_backbone)) for _ in range(rfp_steps - 1))
        self.rfp_aspp = ASPP(self.out_channels, aspp_out_channels, aspp_dilations)
        self.rfp_weight = nn.Conv2d(self.out_channels, 1, 1)
        nn.init.zeros_(self.rfp_weight.weight)
        nn.init.zeros_(self.rfp_weight.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, ...]:
        if len(feats) != len(self.in_channels) + 1:
            raise ValueError(
                f"RFP: expects the image and {len(self.in_channels)} levels, got {len(feats)} inputs; "
                "build the backbone with output_img = true"
            )
        images, levels = feats[0], tuple(feats[1:])
        x = super().forward(levels)
        for backbone in self.rfp_modules:
            fed_back = [x[0], *(self.rfp_aspp(level) for level in x[1:])]
            again = super().forward(backbone.rfp_forward(images, fed_back))
            mixed = []
            for new, old in zip(again, x):
                weight = torch.sigmoid(self.rfp_weight(new))
                mixed.append(weight * new + (1 - weight) * old)
            x = tuple(mixed)
        return x
