"""SCNet's global context head (Vu et al. 2021, "SCNet"): convs on the coarsest FPN level, averaged over the
image, give a context vector added to every RoI's features; it is trained to tell which classes the image holds
(multi-label binary cross-entropy)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_common.layers import ConvModule

from det_cascade.layers.simplified_basic_block import simplified_res_layer


class GlobalContextHead(nn.Module):
    """Multi-label class logits (N, num_classes) and context features (N, C, 1, 1) from the last feature level.

    ``num_convs`` 3x3 convs (paired into simplified residual blocks with ``conv_to_res``), global average
    pooling, and an ``fc`` to the class logits. The loss is ``loss_weight`` x the mean binary cross-entropy
    against each image's set of ground-truth classes.
    """

    def __init__(
        self,
        num_convs: int = 4,
        in_channels: int = 256,
        conv_out_channels: int = 256,
        num_classes: int = 80,
        loss_weight: float = 1.0,
        conv_cfg: dict[str, Any] | None = None,
        norm_cfg: dict[str, Any] | None = None,
        conv_to_res: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        if conv_to_res:
            self.convs = simplified_res_layer(
                "GlobalContextHead", num_convs, in_channels, conv_out_channels, conv_cfg, norm_cfg
            )
        else:
            self.convs = nn.Sequential(*(
                ConvModule(in_channels if i == 0 else conv_out_channels, conv_out_channels, 3, padding=1,
                           conv_cfg=conv_cfg, norm_cfg=norm_cfg)
                for i in range(num_convs)
            ))
        self.fc = nn.Linear(conv_out_channels, num_classes)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.constant_(self.fc.bias, 0.0)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(class logits (N, num_classes), context (N, C, 1, 1)) of the last level of ``feats``."""
        context = F.adaptive_avg_pool2d(self.convs(feats[-1]), 1)
        return self.fc(context.flatten(1)), context

    def loss(self, logits: Tensor, labels: Sequence[Tensor]) -> Tensor:
        """``loss_weight`` x mean binary cross-entropy of the logits against each image's ground-truth classes."""
        targets = torch.zeros_like(logits)
        for i, image_labels in enumerate(labels):
            targets[i, image_labels.long()] = 1.0
        return self.loss_weight * F.binary_cross_entropy_with_logits(logits, targets)
