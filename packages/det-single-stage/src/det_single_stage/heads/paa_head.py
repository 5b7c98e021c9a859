"""PAAHead (Kim & Lee 2020, "Probabilistic Anchor Assignment with IoU Prediction for Object Detection"):
ATSS's towers with an IoU branch; anchors are first matched by IoU >= 0.1, then per object a two-component
Gaussian mixture over the candidates' losses picks the positives; at test time class scores are fused with the
predicted IoU and each kept box is refined by score voting."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from det_common.bbox import bbox_overlaps
from det_common.heads import AnchorHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.postprocess import map_boxes_back, multiclass_nms
from det_single_stage.assigners import COVARIANCE_TYPES, paa_positives
from det_single_stage.heads.atss_head import ATSSHead
from detcore.errors import ConfigError
from detcore.structures import Batch, ImageMeta, Instances

_LOSS_BBOX = {"type": "GIoULoss", "loss_weight": 1.3}
_LOSS_IOU = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 0.5}
_EPS = 1e-12


class PAAHead(ATSSHead):
    """ATSSHead's layers (``atss_centerness`` predicts the IoU of the box with its object) and PAA's training
    and inference.

    ``topk``: candidates per object and level fitted by the mixture; ``covariance_type``: the mixture's
    covariance (see ``det_single_stage.assigners.gmm``); ``score_voting``: refine every detection with the
    IoU- and score-weighted mean of the candidate boxes of its class around it (the paper's score voting).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        topk: int = 9,
        score_voting: bool = True,
        covariance_type: str = "diag",
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        loss_centerness: Mapping[str, Any] = _LOSS_IOU,
        **kwargs: Any,
    ) -> None:
        if covariance_type not in COVARIANCE_TYPES:
            raise ConfigError(f"PAAHead: covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
        self.topk = topk
        self.with_score_voting = score_voting
        self.covariance_type = covariance_type
        super().__init__(num_classes, in_channels, loss_bbox=loss_bbox, loss_centerness=loss_centerness, **kwargs)

    # -- targets ----------------------------------------------------------------------------
    def assignment_inputs(self, priors: DensePriors, outs: DenseOutputs, image: int, meta: ImageMeta) -> Instances:
        """Anchors, levels and validity plus this image's (detached) class logits and box deltas."""
        pred = super().assignment_inputs(priors, outs, image, meta)
        pred.cls_logits = flatten_levels([s[image : image + 1].detach() for s in outs.cls_scores],
                                         self.cls_out_channels)[0]
        pred.deltas = flatten_levels([b[image : image + 1].detach() for b in outs.bbox_preds], self.box_dim)[0]
        return pred

    def candidate_losses(self, pred: Instances, targets: DenseTargets) -> Tensor:
        """Focal + box loss of each first-stage positive against its object: the score PAA models."""
        pos = targets.pos_inds
        loss_cls = self.loss_cls(pred.cls_logits[pos], targets.labels[pos], targets.label_weights[pos],
                                 avg_factor=1.0, reduction_override="none").sum(-1)
        boxes = self.bbox_coder.decode(pred.priors[pos], pred.deltas[pos])
        gt_boxes = targets.bbox_targets[pos]
        if not self.reg_decoded_bbox:
            gt_boxes = self.bbox_coder.decode(pred.priors[pos], gt_boxes)
        loss_bbox = self.loss_bbox(boxes, gt_boxes, targets.bbox_weights[pos], avg_factor=1.0,
                                   reduction_override="none")
        return loss_cls + loss_bbox

    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """First-stage targets (``train_cfg.assigner``, IoU >= 0.1), then the Gaussian-mixture split per object:
        candidates it rejects become negatives. ``avg_factor`` is the number of positives (may be 0)."""
        targets = AnchorHead.get_targets_single(self, pred, gt, ignored, meta)
        pos = targets.pos_inds
        if pos.numel() == 0:
            targets.avg_factor = 0.0
            return targets
        with torch.no_grad():
            keep = paa_positives(self.candidate_losses(pred, targets), targets.assigned_gt_inds[pos] - 1,
                                 pred.level_ids[pos], self.topk, self.covariance_type)
        rejected = pos[~keep]
        targets.labels[rejected] = self.num_classes
        targets.bbox_weights[rejected] = 0.0
        targets.assigned_gt_inds[rejected] = 0
        targets.pos_inds = pos[keep]
        targets.neg_inds = torch.cat([targets.neg_inds, rejected]).sort().values
        targets.avg_factor = float(keep.sum())
        return targets

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Focal loss (averaged over max(positives, images)), GIoU weighted by each positive's IoU with its object
        (averaged over the IoUs' sum) and IoU-prediction BCE against that IoU (averaged over positives)."""
        assert outs.score_factors is not None
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, self.box_dim).reshape(-1, self.box_dim)
        iou_pred = flatten_levels(outs.score_factors, 1).reshape(-1)
        num_pos = targets.avg_factor
        loss_cls = self.loss_cls(cls, targets.labels, targets.label_weights,
                                 avg_factor=max(num_pos, float(len(batch.metas))))
        pos = targets.pos_inds
        if pos.numel() == 0:
            return {"loss_cls": loss_cls, "loss_bbox": reg.sum() * 0, "loss_iou": iou_pred.sum() * 0}
        pos_anchors = priors.flat.repeat(len(batch.metas), 1)[pos]
        pos_boxes = self.bbox_coder.decode(pos_anchors, reg[pos])
        gt_boxes = targets.bbox_targets[pos]
        if not self.reg_decoded_bbox:
            gt_boxes = self.bbox_coder.decode(pos_anchors, gt_boxes)
        iou_target = bbox_overlaps(pos_boxes.detach(), gt_boxes, is_aligned=True)
        loss_iou = self.loss_centerness(iou_pred[pos], iou_target, avg_factor=num_pos)
        loss_bbox = self.loss_bbox(pos_boxes, gt_boxes, iou_target.clamp(min=_EPS), avg_factor=iou_target.sum())
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_iou": loss_iou}

    # -- inference --------------------------------------------------------------------------
    def predict_single(
        self,
        outs: DenseOutputs,
        priors: DensePriors,
        image: int,
        meta: ImageMeta,
        rescale: bool,
        cfg: Mapping[str, Any],
    ) -> Instances:
        """Per level the ``nms_pre`` anchors of best sqrt(class score x IoU), decoded; class-wise NMS on
        sqrt(score x IoU) above ``score_thr``; then score voting."""
        nms_pre = cfg.get("nms_pre", -1)
        all_boxes, all_scores = [], []
        for level, level_priors in enumerate(priors.per_level):
            logits, deltas, iou_logits = self.level_outputs(outs, level, image)
            assert iou_logits is not None
            fused = (logits.sigmoid() * iou_logits.sigmoid()[:, None]).sqrt()
            if 0 < nms_pre < fused.shape[0]:
                keep = fused.max(dim=1).values.topk(nms_pre).indices
                level_priors, deltas, fused = level_priors[keep], deltas[keep], fused[keep]
            all_boxes.append(self.decode(level_priors, deltas, tuple(meta.img_shape)))
            all_scores.append(fused)
        boxes, scores = torch.cat(all_boxes), torch.cat(all_scores)
        if rescale:
            boxes = map_boxes_back(boxes, meta)
        image_size = tuple(meta.ori_shape) if rescale else tuple(meta.img_shape)
        result = multiclass_nms(boxes, scores, cfg["score_thr"], cfg.get("nms"), int(cfg.get("max_per_img", -1)),
                                image_size=image_size)
        if self.with_score_voting and len(result) > 0:
            result.boxes = score_voting(result, boxes, scores, cfg["score_thr"])
        return result


def score_voting(dets: Instances, boxes: Tensor, scores: Tensor, score_thr: float) -> Tensor:
    """Each detection's box replaced by the mean of the candidate boxes of its class (score > ``score_thr``,
    IoU > 0.01 with it), weighted by score x exp(-(1 - IoU)^2 / 0.025) (PAA's score voting). (K, 4)."""
    voted = dets.boxes.clone()
    rows, labels = (scores > score_thr).nonzero(as_tuple=True)
    for cls in torch.unique(dets.labels):
        members = labels == cls
        cand_boxes, cand_scores = boxes[rows[members]], scores[rows[members], cls]
        det_inds = torch.nonzero(dets.labels == cls).flatten()
        ious = bbox_overlaps(dets.boxes[det_inds], cand_boxes)
        for k, det in enumerate(det_inds):
            near = ious[k] > 0.01
            weights = (torch.exp(-((1 - ious[k][near]) ** 2) / 0.025) * cand_scores[near])[:, None]
            voted[det] = (weights * cand_boxes[near]).sum(dim=0) / weights.sum(dim=0)
    return voted
