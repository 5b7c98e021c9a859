"""FreeAnchorRetinaHead (Zhang et al. 2019, "FreeAnchor: Learning to Match Anchors for Visual Object Detection"):
RetinaNet's layers trained as maximum-likelihood matching. Each object has a bag of its ``pre_anchor_topk``
highest-IoU anchors; the positive loss asks one anchor of the bag (mean-max weighted) to both classify and
localise it; the negative loss is a focal loss on every anchor's class probability times how unlikely it is
to be that class's object box."""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from det_common.bbox import bbox_overlaps
from det_common.heads import DenseOutputs, flatten_levels
from det_single_stage.heads.retina_head import RetinaHead
from detcore.structures import Batch, Instances

_CODER = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [0.1, 0.1, 0.2, 0.2]}
_LOSS_BBOX = {"type": "SmoothL1Loss", "beta": 0.11, "loss_weight": 0.75}
_EPS = 1e-12


class FreeAnchorRetinaHead(RetinaHead):
    """RetinaHead (same layers and inference) with FreeAnchor's bag losses.

    ``pre_anchor_topk``: anchors per object's bag; ``bbox_thr``: IoU of a predicted box with an object below
    which it is surely not that object (the saliency ramps from there to the object's best IoU); ``gamma`` and
    ``alpha``: the negative focal exponent and the positive / negative balance. ``loss_bbox`` (smooth L1)
    gives each bag anchor its localisation likelihood exp(-loss).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        pre_anchor_topk: int = 50,
        bbox_thr: float = 0.6,
        gamma: float = 2.0,
        alpha: float = 0.5,
        bbox_coder: Mapping[str, Any] = _CODER,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        **kwargs: Any,
    ) -> None:
        self.pre_anchor_topk = pre_anchor_topk
        self.bbox_thr = bbox_thr
        self.gamma = gamma
        self.alpha = alpha
        super().__init__(num_classes, in_channels, bbox_coder=bbox_coder, loss_bbox=loss_bbox, **kwargs)

    def loss_by_feat(self, outs: DenseOutputs, batch: Batch) -> dict[str, Tensor]:
        """``positive_bag_loss`` (per object, averaged over objects) and ``negative_bag_loss`` (over every anchor
        and class, averaged over objects x ``pre_anchor_topk``)."""
        if batch.gt is None:
            raise ValueError(f"{type(self).__name__}.loss needs ground truth (batch.gt is None)")
        anchors = self.get_priors(outs).flat
        cls_probs = flatten_levels(outs.cls_scores, self.cls_out_channels).sigmoid()
        deltas = flatten_levels(outs.bbox_preds, self.box_dim)
        box_probs, positive_losses = [], []
        for image, gt in enumerate(batch.gt):
            box_prob, positive = self.positive_bag_single(cls_probs[image], deltas[image], anchors, gt)
            box_probs.append(box_prob)
            positive_losses.append(positive)
        num_pos = sum(len(gt) for gt in batch.gt)
        positive_loss = torch.cat(positive_losses).sum() / max(1, num_pos)
        if num_pos == 0:
            positive_loss = deltas.sum() * 0
        negative_loss = self.negative_bag_loss(cls_probs, torch.stack(box_probs)).sum() / max(
            1, num_pos * self.pre_anchor_topk
        )
        return {"positive_bag_loss": positive_loss, "negative_bag_loss": negative_loss}

    def object_box_prob(self, deltas: Tensor, anchors: Tensor, gt: Instances) -> Tensor:
        """(A, C) saliency of every anchor's predicted box for each class: per object, its IoU ramped from
        ``bbox_thr`` (0) to the object's best IoU (1); per class, the largest over that class's objects."""
        probs = deltas.new_zeros((anchors.shape[0], self.cls_out_channels))
        if len(gt) == 0:
            return probs
        ious = bbox_overlaps(gt.boxes.to(deltas.dtype), self.bbox_coder.decode(anchors, deltas))  # (G, A)
        best = ious.max(dim=1, keepdim=True).values.clamp(min=self.bbox_thr + _EPS)
        object_prob = ((ious - self.bbox_thr) / (best - self.bbox_thr)).clamp(min=0, max=1)
        rows = gt.labels.long()[:, None].expand_as(object_prob)
        return probs.T.scatter_reduce(0, rows, object_prob, "amax", include_self=True).T

    def positive_bag_single(self, cls_prob: Tensor, deltas: Tensor, anchors: Tensor, gt: Instances
                            ) -> tuple[Tensor, Tensor]:
        """(box_prob (A, C) for the negative loss, positive bag loss (G,)) of one image."""
        with torch.no_grad():
            box_prob = self.object_box_prob(deltas.detach(), anchors, gt)
        if len(gt) == 0:
            return box_prob, cls_prob.new_zeros(0)
        boxes = gt.boxes.to(deltas.dtype)
        k = min(self.pre_anchor_topk, anchors.shape[0])
        matched = bbox_overlaps(boxes, anchors).topk(k, dim=1, sorted=False).indices  # (G, k)
        matched_cls_prob = cls_prob[matched, gt.labels.long()[:, None].expand(-1, k)]
        matched_anchors = anchors[matched]
        targets = self.bbox_coder.encode(matched_anchors.reshape(-1, 4),
                                         boxes[:, None].expand_as(matched_anchors).reshape(-1, 4))
        loss_bbox = self.loss_bbox(deltas[matched].reshape(-1, 4), targets, reduction_override="none").sum(-1)
        matched_box_prob = torch.exp(-loss_bbox.reshape(len(gt), k))
        return box_prob, self.positive_bag_loss(matched_cls_prob, matched_box_prob)

    def positive_bag_loss(self, matched_cls_prob: Tensor, matched_box_prob: Tensor) -> Tensor:
        """alpha x BCE(mean-max of the bag's cls x loc likelihoods, 1) per object (G,)."""
        matched_prob = matched_cls_prob * matched_box_prob
        weight = 1 / torch.clamp(1 - matched_prob, _EPS, None)
        weight = weight / weight.sum(dim=1, keepdim=True)
        bag_prob = (weight * matched_prob).sum(dim=1)
        return self.alpha * F.binary_cross_entropy(bag_prob, torch.ones_like(bag_prob), reduction="none")

    def negative_bag_loss(self, cls_prob: Tensor, box_prob: Tensor) -> Tensor:
        """(1 - alpha) x focal BCE(cls x (1 - saliency), 0) of every anchor and class."""
        prob = (cls_prob * (1 - box_prob)).clamp(min=_EPS, max=1 - _EPS)
        return (1 - self.alpha) * prob.pow(self.gamma) * F.binary_cross_entropy(prob, torch.zeros_like(prob),
                                                                                reduction="none")
