"""HTC's semantic segmentation branch (Chen et al. 2019, "Hybrid Task Cascade for Instance Segmentation").

Every FPN level goes through a 1x1 lateral conv and is resized to the ``fusion_level``'s size; their sum
goes through ``num_convs`` 3x3 convs, then a 1x1 ``conv_logits`` gives the per-pixel class logits and a
1x1 ``conv_embedding`` the semantic features the RoI head adds to its pooled RoI features.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from detcore.registry import build

from det_common.layers import ConvModule

DEFAULT_LOSS_SEG = {"type": "CrossEntropyLoss", "ignore_index": 255, "loss_weight": 0.2}


class FusedSemanticHead(nn.Module):
    """Semantic logits (N, num_classes, h, w) and features (N, C, h, w) at the ``fusion_level``'s resolution.

    ``seg_scale_factor`` is the size of that level relative to the input image (1/8 for level 1 of an FPN):
    full-size semantic maps are resized by it (nearest) before the loss, maps already rescaled by the
    pipeline's ``SegRescale`` are used as they are. Pixels labelled ``ignore_index`` (255) are ignored.
    """

    def __init__(
        self,
        num_ins: int,
        fusion_level: int,
        seg_scale_factor: float = 1 / 8,
        num_convs: int = 4,
        in_channels: int = 256,
        conv_out_channels: int = 256,
        num_classes: int = 183,
        conv_cfg: dict[str, Any] | None = None,
        norm_cfg: dict[str, Any] | None = None,
        loss_seg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= fusion_level < num_ins:
            raise ValueError(f"FusedSemanticHead: fusion_level {fusion_level} is not one of the {num_ins} inputs")
        self.num_ins = num_ins
        self.fusion_level = fusion_level
        self.seg_scale_factor = seg_scale_factor
        self.num_classes = num_classes
        self.lateral_convs = nn.ModuleList(
            ConvModule(in_channels, in_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg, inplace=False)
            for _ in range(num_ins)
        )
        self.convs = nn.ModuleList(
            ConvModule(in_channels if i == 0 else conv_out_channels, conv_out_channels, 3, padding=1,
                       conv_cfg=conv_cfg, norm_cfg=norm_cfg)
            for i in range(num_convs)
        )
        self.conv_embedding = ConvModule(conv_out_channels, conv_out_channels, 1, conv_cfg=conv_cfg, norm_cfg=norm_cfg)
        self.conv_logits = nn.Conv2d(conv_out_channels, num_classes, 1)
        nn.init.kaiming_normal_(self.conv_logits.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.conv_logits.bias, 0.0)
        self.loss_seg = build("losses", dict(loss_seg or DEFAULT_LOSS_SEG))

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(semantic logits, semantic features) of the first ``num_ins`` levels fused at ``fusion_level``."""
        if len(feats) < self.num_ins:
            raise ValueError(f"FusedSemanticHead: got {len(feats)} feature levels, num_ins = {self.num_ins}")
        x = self.lateral_convs[self.fusion_level](feats[self.fusion_level])
        size = tuple(x.shape[-2:])
        for i in range(self.num_ins):
            if i != self.fusion_level:
                level = F.interpolate(feats[i], size=size, mode="bilinear", align_corners=True)
                x = x + self.lateral_convs[i](level)
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(x), self.conv_embedding(x)

    def loss(self, seg_logits: Tensor, gt_sem_seg: Tensor) -> Tensor:
        """Per-pixel cross-entropy of the logits against the batch's semantic maps (N, H, W), padded with 255."""
        labels = gt_sem_seg
        if labels.shape[-2:] != seg_logits.shape[-2:]:
            labels = F.interpolate(labels[:, None].float(), scale_factor=self.seg_scale_factor, mode="nearest")
            labels = labels[:, 0].long()
        if labels.shape[-2:] != seg_logits.shape[-2:]:
            raise ValueError(
                f"FusedSemanticHead: semantic maps of size {tuple(gt_sem_seg.shape[-2:])} do not give the logits' "
                f"size {tuple(seg_logits.shape[-2:])} at seg_scale_factor = {self.seg_scale_factor}; pad the images "
                "to a multiple of 32 and rescale the maps by the same factor (SegRescale) or not at all"
            )
        return self.loss_seg(seg_logits, labels)
