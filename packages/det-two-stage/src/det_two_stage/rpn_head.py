"""RPN head: objectness and box deltas over anchors, and proposal generation (MMDetection v2 / torchvision)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detcore import ops
from detcore.structures import ImageMeta, Instances

from det_common.heads.anchor_head import AnchorHead
from det_common.heads.base_dense_head import map_boxes_back
from det_common.layers import ConvModule

RPN_ANCHORS = {"type": "AnchorGenerator", "scales": [8], "ratios": [0.5, 1.0, 2.0], "strides": [4, 8, 16, 32, 64]}
RPN_CODER = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4}
RPN_LOSS_CLS = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
RPN_LOSS_BBOX = {"type": "L1Loss", "loss_weight": 1.0}
# MMDetection v2's RPN test settings; torchvision's are nms_pre = max_per_img = 1000, min_bbox_size = 1e-3.
DEFAULT_PROPOSAL_CFG: dict[str, Any] = {
    "nms_pre": 1000,
    "max_per_img": 1000,
    "nms": {"type": "nms", "iou_threshold": 0.7},
    "min_bbox_size": 0.0,
    "score_thr": None,
}


class RPNHead(AnchorHead):
    """Region proposal head: a shared 3x3 ``rpn_conv`` (+ReLU) then 1x1 ``rpn_cls`` and ``rpn_reg`` per level.

    Proposals: per level the ``nms_pre`` best anchors by objectness, decoded and clipped; boxes no
    wider or taller than ``min_bbox_size`` and (if set) scores below ``score_thr`` dropped; NMS per
    level (``nms.iou_threshold``); the best ``max_per_img`` kept. ``test_cfg`` applies in eval mode,
    ``proposal_cfg`` (the detector's ``train_cfg.rpn_proposal``) in training mode.
    """

    def __init__(
        self,
        in_channels: int,
        num_convs: int = 1,
        anchor_generator: Mapping[str, Any] = RPN_ANCHORS,
        bbox_coder: Mapping[str, Any] = RPN_CODER,
        loss_cls: Mapping[str, Any] = RPN_LOSS_CLS,
        loss_bbox: Mapping[str, Any] = RPN_LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        proposal_cfg: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.num_convs = num_convs
        super().__init__(
            num_classes=1,
            in_channels=in_channels,
            anchor_generator=anchor_generator,
            bbox_coder=bbox_coder,
            loss_cls=loss_cls,
            loss_bbox=loss_bbox,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            **kwargs,
        )
        self.test_cfg = {**DEFAULT_PROPOSAL_CFG, **(dict(test_cfg) if test_cfg else {})}
        self.proposal_cfg = {**self.test_cfg, **(dict(proposal_cfg) if proposal_cfg else {})}

    def _init_layers(self) -> None:
        if self.num_convs > 1:
            self.rpn_conv = nn.Sequential(
                *(
                    ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, 3, padding=1, inplace=False)
                    for i in range(self.num_convs)
                )
            )
        else:
            self.rpn_conv = nn.Conv2d(self.in_channels, self.feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * 4, 1)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Objectness logits (N, A, H, W) and deltas (N, 4A, H, W) of one level."""
        x = F.relu(self.rpn_conv(x))
        return self.rpn_cls(x), self.rpn_reg(x)

    def _target_labels(self, gt: Instances) -> Tensor:
        """Every ground truth is foreground class 0 for the RPN."""
        return torch.zeros_like(gt.labels)

    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor], *, batch: Any) -> dict[str, Tensor]:
        losses = super().loss_by_feat(cls_scores, bbox_preds, batch=batch)
        return {"loss_rpn_cls": losses["loss_cls"], "loss_rpn_bbox": losses["loss_bbox"]}

    # -- proposals --------------------------------------------------------------------------
    def predict_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        score_factors: Sequence[Tensor] | None = None,
        *,
        metas: Sequence[ImageMeta],
        rescale: bool = False,
        cfg: Mapping[str, Any] | None = None,
    ) -> list[Instances]:
        """Proposals per image: ``boxes``, ``scores`` (objectness) and ``labels`` (all 0)."""
        base = self.proposal_cfg if self.training else self.test_cfg
        cfg = {**base, **(dict(cfg) if cfg else {})}
        featmap_sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        anchors = self.prior_generator.grid_priors(featmap_sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device)
        results = []
        for i, meta in enumerate(metas):
            logits = [c[i].detach().permute(1, 2, 0).reshape(-1) for c in cls_scores]
            deltas = [b[i].detach().permute(1, 2, 0).reshape(-1, 4) for b in bbox_preds]
            results.append(self.proposals_single(logits, deltas, anchors, meta, rescale, cfg))
        return results

    def proposals_single(
        self,
        logits: list[Tensor],
        deltas: list[Tensor],
        anchors: list[Tensor],
        meta: ImageMeta,
        rescale: bool,
        cfg: Mapping[str, Any],
    ) -> Instances:
        """Proposals of one image from per-level objectness logits (P,), deltas (P, 4) and anchors (P, 4)."""
        img_shape = tuple(meta.img_shape)
        boxes, scores, levels = [], [], []
        for level, (level_logits, level_deltas, level_anchors) in enumerate(zip(logits, deltas, anchors)):
            nms_pre = cfg["nms_pre"]
            if 0 < nms_pre < level_logits.shape[0]:
                level_logits, top = level_logits.topk(nms_pre)
                level_deltas, level_anchors = level_deltas[top], level_anchors[top]
            boxes.append(self.bbox_coder.decode(level_anchors, level_deltas, max_shape=img_shape))
            scores.append(level_logits.sigmoid())
            levels.append(torch.full_like(level_logits, level, dtype=torch.long))
        boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)

        min_size = cfg.get("min_bbox_size", 0.0)
        if min_size is not None and min_size >= 0:
            keep = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        if cfg.get("score_thr") is not None:
            keep = scores >= cfg["score_thr"]
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        nms_cfg = cfg["nms"]
        if nms_cfg.get("type", "nms") != "nms":
            raise ValueError(f"RPNHead: nms.type must be 'nms', got {nms_cfg.get('type')!r}")
        keep = ops.batched_nms(boxes, scores, levels, float(nms_cfg.get("iou_threshold", 0.7)))
        keep = keep[: cfg["max_per_img"]]
        boxes, scores = boxes[keep], scores[keep]
        if rescale:
            boxes = map_boxes_back(boxes, meta)
        image_size = tuple(meta.ori_shape) if rescale else img_shape
        labels = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
        return Instances(image_size, boxes=boxes, scores=scores, labels=labels)
