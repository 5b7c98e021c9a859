"""RPN head (Ren et al. 2015, Faster R-CNN): objectness and box deltas over anchors, and proposal generation."""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_common.heads.anchor_head import AnchorHead
from det_common.heads.dense_structures import DenseOutputs, DensePriors, DenseTargets
from det_common.layers import ConvModule
from detcore.structures import Batch, Instances

RPN_ANCHORS = {"type": "AnchorGenerator", "scales": [8], "ratios": [0.5, 1.0, 2.0], "strides": [4, 8, 16, 32, 64]}
RPN_CODER = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4}
RPN_LOSS_CLS = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
RPN_LOSS_BBOX = {"type": "L1Loss", "loss_weight": 1.0}
# MMDetection's RPN test settings; torchvision's are nms_pre = max_per_img = 1000, min_bbox_size = 1e-3, score_thr = 0.
DEFAULT_PROPOSAL_CFG: dict[str, Any] = {
    "nms_pre": 1000,
    "max_per_img": 1000,
    "nms": {"type": "nms", "iou_threshold": 0.7},
    "min_bbox_size": 0.0,
    "score_thr": None,
}


class RPNHead(AnchorHead):
    """Region proposal head: a shared 3x3 ``rpn_conv`` (+ReLU) then 1x1 ``rpn_cls`` and ``rpn_reg`` per level.

    Proposals follow the dense heads' post-processing with one class and NMS within each level:
    per level the ``nms_pre`` best anchors by objectness, decoded and clipped; boxes no wider or
    taller than ``min_bbox_size`` and (if set) scores not above ``score_thr`` dropped; NMS per level;
    the best ``max_per_img`` kept. ``test_cfg`` applies in eval mode, ``proposal_cfg`` (the
    detector's ``train_cfg.rpn_proposal``) in training mode.
    """

    nms_groups = "level"
    default_test_cfg = DEFAULT_PROPOSAL_CFG

    def __init__(
        self,
        in_channels: int,
        num_convs: int = 1,
        feat_channels: int = 256,
        anchor_generator: Mapping[str, Any] = RPN_ANCHORS,
        bbox_coder: Mapping[str, Any] = RPN_CODER,
        reg_decoded_bbox: bool = False,
        loss_cls: Mapping[str, Any] = RPN_LOSS_CLS,
        loss_bbox: Mapping[str, Any] = RPN_LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        proposal_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.num_convs = num_convs
        super().__init__(
            num_classes=1,
            in_channels=in_channels,
            feat_channels=feat_channels,
            anchor_generator=anchor_generator,
            bbox_coder=bbox_coder,
            reg_decoded_bbox=reg_decoded_bbox,
            loss_cls=loss_cls,
            loss_bbox=loss_bbox,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
        )
        self.proposal_cfg = {**self.test_cfg, **dict(proposal_cfg or {})}

    def _init_layers(self) -> None:
        if self.num_convs > 1:
            self.rpn_conv = nn.Sequential(
                *(
                    ConvModule(
                        self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, padding=1,
                        inplace=False,
                    )
                    for i in range(self.num_convs)
                )
            )
        else:
            self.rpn_conv = nn.Conv2d(self.in_channels, self.feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * 4, 1)

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """Objectness logits (N, A, H, W) and deltas (N, 4A, H, W) of one level."""
        x = F.relu(self.rpn_conv(x))
        return self.rpn_cls(x), self.rpn_reg(x)

    def target_labels(self, gt: Instances) -> Tensor:
        """Every ground truth is foreground class 0 for the RPN."""
        return torch.zeros_like(gt.labels)

    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        losses = super().loss_from_targets(outs, priors, targets, batch)
        return {"loss_rpn_cls": losses["loss_cls"], "loss_rpn_bbox": losses["loss_bbox"]}

    def predict_cfg(self, cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``proposal_cfg`` while training (proposals for the RoI head's sampling), ``test_cfg`` otherwise."""
        return {**(self.proposal_cfg if self.training else self.test_cfg), **dict(cfg or {})}
