"""Second-stage box head base: per-RoI class scores and box deltas, their targets, losses and post-processing."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detcore.interfaces import BBoxHead as BBoxHeadInterface
from detcore.interfaces import SamplingResult
from detcore.registry import build
from detcore.structures import ImageMeta, Instances

from det_common.heads.base_dense_head import map_boxes_back
from det_common.postprocess import multiclass_nms

DEFAULT_CODER = {
    "type": "DeltaXYWHBBoxCoder",
    "target_means": [0.0, 0.0, 0.0, 0.0],
    "target_stds": [0.1, 0.1, 0.2, 0.2],
}


class BBoxHead(BBoxHeadInterface):
    """Linear classifier (``fc_cls``, num_classes + 1 outputs, background last) and regressor (``fc_reg``).

    Regression is class-specific (4 deltas per foreground class) unless ``reg_class_agnostic``.
    Subclasses add the RoI feature layers in front (see ``ConvFCBBoxHead``).
    """

    def __init__(
        self,
        with_avg_pool: bool = False,
        with_cls: bool = True,
        with_reg: bool = True,
        roi_feat_size: int = 7,
        in_channels: int = 256,
        num_classes: int = 80,
        bbox_coder: dict[str, Any] | None = None,
        reg_class_agnostic: bool = False,
        reg_decoded_bbox: bool = False,
        loss_cls: dict[str, Any] | None = None,
        loss_bbox: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not (with_cls or with_reg):
            raise ValueError("BBoxHead needs at least one of with_cls / with_reg")
        self.with_avg_pool = with_avg_pool
        self.with_cls = with_cls
        self.with_reg = with_reg
        self.roi_feat_size = (roi_feat_size, roi_feat_size) if isinstance(roi_feat_size, int) else tuple(roi_feat_size)
        self.roi_feat_area = self.roi_feat_size[0] * self.roi_feat_size[1]
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.reg_class_agnostic = reg_class_agnostic
        self.reg_decoded_bbox = reg_decoded_bbox
        self.bbox_coder = build("bbox_coders", dict(bbox_coder or DEFAULT_CODER))
        self.loss_cls = build("losses", dict(loss_cls or {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": 1.0}))
        self.loss_bbox = build("losses", dict(loss_bbox or {"type": "L1Loss", "loss_weight": 1.0}))

        in_features = in_channels if with_avg_pool else in_channels * self.roi_feat_area
        self.avg_pool = nn.AvgPool2d(self.roi_feat_size) if with_avg_pool else None
        self.build_predictors(in_features, in_features)

    def build_predictors(self, cls_in_features: int, reg_in_features: int) -> None:
        """(Re)create ``fc_cls`` and ``fc_reg`` for the given input widths and initialise them."""
        self.fc_cls = nn.Linear(cls_in_features, self.num_classes + 1) if self.with_cls else None
        out_reg = 4 if self.reg_class_agnostic else 4 * self.num_classes
        self.fc_reg = nn.Linear(reg_in_features, out_reg) if self.with_reg else None
        self.init_weights()

    def init_weights(self) -> None:
        """MMDetection's init: classifier N(0, 0.01), regressor N(0, 0.001), zero biases."""
        if self.fc_cls is not None:
            nn.init.normal_(self.fc_cls.weight, 0.0, 0.01)
            nn.init.constant_(self.fc_cls.bias, 0.0)
        if self.fc_reg is not None:
            nn.init.normal_(self.fc_reg.weight, 0.0, 0.001)
            nn.init.constant_(self.fc_reg.bias, 0.0)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        x = self.avg_pool(roi_feats) if self.avg_pool is not None else roi_feats
        x = x.flatten(1)
        cls_score = self.fc_cls(x) if self.fc_cls is not None else x.new_zeros((x.shape[0], 0))
        bbox_pred = self.fc_reg(x) if self.fc_reg is not None else x.new_zeros((x.shape[0], 0))
        return cls_score, bbox_pred

    # -- training -------------------------------------------------------------------------
    def get_targets(
        self, sampling_results: Sequence[SamplingResult], pos_weight: float = -1.0
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Labels (background = num_classes), label weights, box targets and box weights of all sampled RoIs."""
        labels, label_weights, bbox_targets, bbox_weights = [], [], [], []
        for res in sampling_results:
            num_pos, num_neg = res.pos_priors.shape[0], res.neg_priors.shape[0]
            num = num_pos + num_neg
            priors = res.pos_priors
            img_labels = priors.new_full((num,), self.num_classes, dtype=torch.long)
            img_label_weights = priors.new_zeros(num)
            img_targets = priors.new_zeros((num, 4))
            img_weights = priors.new_zeros((num, 4))
            if num_pos > 0:
                img_labels[:num_pos] = res.pos_gt_labels.long()
                img_label_weights[:num_pos] = 1.0 if pos_weight <= 0 else pos_weight
                if self.reg_decoded_bbox:
                    img_targets[:num_pos] = res.pos_gt_boxes
                else:
                    img_targets[:num_pos] = self.bbox_coder.encode(res.pos_priors, res.pos_gt_boxes)
                img_weights[:num_pos] = 1.0
            if num_neg > 0:
                img_label_weights[num_pos:] = 1.0
            labels.append(img_labels)
            label_weights.append(img_label_weights)
            bbox_targets.append(img_targets)
            bbox_weights.append(img_weights)
        return torch.cat(labels), torch.cat(label_weights), torch.cat(bbox_targets), torch.cat(bbox_weights)

    def loss(
        self,
        cls_score: Tensor,
        bbox_pred: Tensor,
        rois: Tensor,
        labels: Tensor,
        label_weights: Tensor,
        bbox_targets: Tensor,
        bbox_weights: Tensor,
    ) -> dict[str, Tensor]:
        """Classification loss over all sampled RoIs, regression loss over the positives (averaged over all)."""
        losses: dict[str, Tensor] = {}
        if self.with_cls:
            avg_factor = max(float((label_weights > 0).sum().item()), 1.0)
            losses["loss_cls"] = self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor)
            losses["acc"] = accuracy(cls_score.detach(), labels)
        if self.with_reg:
            pos = (labels >= 0) & (labels < self.num_classes)
            if bool(pos.any()):
                if self.reg_class_agnostic:
                    pos_pred = bbox_pred.view(bbox_pred.shape[0], 4)[pos]
                else:
                    pos_pred = bbox_pred.view(bbox_pred.shape[0], -1, 4)[pos, labels[pos]]
                if self.reg_decoded_bbox:
                    pos_pred = self.bbox_coder.decode(rois[pos, 1:], pos_pred)
                losses["loss_bbox"] = self.loss_bbox(
                    pos_pred, bbox_targets[pos], bbox_weights[pos], avg_factor=bbox_targets.shape[0]
                )
            else:
                losses["loss_bbox"] = bbox_pred.sum() * 0.0
        return losses

    # -- inference ------------------------------------------------------------------------
    def decode_boxes(self, rois: Tensor, bbox_pred: Tensor, img_shape: tuple[int, int] | None) -> Tensor:
        """Per-class boxes (K, C, 4) (C = 1 if class agnostic) decoded from RoIs (K, 5), clipped to ``img_shape``."""
        num_rois = rois.shape[0]
        deltas = bbox_pred.view(num_rois, bbox_pred.shape[1] // 4, 4)
        priors = rois[:, None, 1:].expand_as(deltas)
        boxes = self.bbox_coder.decode(priors.reshape(-1, 4), deltas.reshape(-1, 4), max_shape=img_shape)
        return boxes.view(num_rois, deltas.shape[1], 4)

    def predict_by_feat(
        self,
        rois: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        meta: ImageMeta,
        rescale: bool,
        test_cfg: dict[str, Any],
    ) -> Instances:
        """Detections of one image: softmax scores, decoded boxes, score threshold and class-wise NMS.

        With ``rescale`` the boxes are mapped back to original-image pixels (flip undone, scale divided out).

        ``test_cfg``: ``score_thr``, ``nms``, ``max_per_img``, and ``min_bbox_size`` (drop boxes
        narrower or shorter than it, as torchvision does with 0.01).
        """
        cls_score, bbox_pred = cls_score.float(), bbox_pred.float()  # fp32 post-processing after a bf16 forward
        scores = F.softmax(cls_score, dim=-1)[:, : self.num_classes]
        boxes = self.decode_boxes(rois, bbox_pred, meta.img_shape)
        min_size = test_cfg.get("min_bbox_size", 0.0)
        if min_size > 0:
            small = ((boxes[..., 2] - boxes[..., 0]) < min_size) | ((boxes[..., 3] - boxes[..., 1]) < min_size)
            scores = scores.masked_fill(small.expand_as(scores), 0.0)
        if rescale:
            boxes = map_boxes_back(boxes.reshape(-1, 4), meta).view(boxes.shape)
        if boxes.shape[1] == 1:
            boxes = boxes[:, 0]
        return multiclass_nms(
            boxes,
            scores,
            test_cfg.get("score_thr", 0.05),
            test_cfg.get("nms", {"type": "nms", "iou_threshold": 0.5}),
            test_cfg.get("max_per_img", 100),
            image_size=tuple(meta.ori_shape if rescale else meta.img_shape),
        )


def accuracy(cls_score: Tensor, labels: Tensor) -> Tensor:
    """Top-1 classification accuracy in percent (logged next to the losses)."""
    if labels.numel() == 0:
        return cls_score.new_tensor(0.0)
    return (cls_score.argmax(dim=1) == labels).float().mean() * 100.0
