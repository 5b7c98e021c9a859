"""Prime Sample Attention (Cao et al. 2020, "Prime Sample Attention in Object Detection"): ISR-P re-weights the
positives' classification by their IoU rank among the samples of the same class (hierarchical local rank), and
CARL weighs the positives' regression by their classification score so the two tasks agree. Shared by the
single-stage (PISA RetinaNet) and two-stage (PISA Faster R-CNN) heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from det_common.bbox import bbox_overlaps


def isr_p_weights(
    cls_score: Tensor,
    deltas: Tensor,
    labels: Tensor,
    label_weights: Tensor,
    delta_targets: Tensor,
    priors: Tensor,
    gt_ids: Tensor,
    loss_cls: nn.Module,
    bbox_coder: nn.Module,
    k: float = 2.0,
    bias: float = 0.0,
    num_classes: int = 80,
) -> Tensor:
    """New ``label_weights`` (N,) after ISR-P: each positive's weight times ((max - IoU-HLR rank) / max) and
    ``bias`` / ``k`` shaping, rescaled so the positives' classification loss keeps its original sum.

    ``cls_score`` (N, C) logits and ``deltas`` (N, 4) of every sample, ``labels`` (C = background),
    ``delta_targets`` (N, 4) encoded targets, ``priors`` (N, 4) anchors or RoIs, ``gt_ids`` (N,) an id of each
    positive's object unique over the batch (other rows ignored). The IoU-HLR rank orders each class's
    positives first by their rank within their object, then by IoU.
    """
    label_weights = label_weights.clone()
    pos = ((labels >= 0) & (labels < num_classes)).nonzero().flatten()
    if pos.numel() == 0:
        return label_weights
    pos_labels, gts = labels[pos], gt_ids[pos]
    with torch.no_grad():
        boxes = bbox_coder.decode(priors[pos], deltas[pos].detach())
        target_boxes = bbox_coder.decode(priors[pos], delta_targets[pos])
        ious = bbox_overlaps(boxes, target_boxes, is_aligned=True)
        weights = label_weights[pos]
        max_count = pos_labels.bincount().max()
        for label in pos_labels.unique():
            in_label = (pos_labels == label).nonzero().flatten()
            for gt in gts[in_label].unique():
                in_gt = in_label[gts[in_label] == gt]
                rank = ious[in_gt].sort(descending=True).indices.sort().indices
                ious[in_gt] += max_count - rank.float()
            rank = ious[in_label].sort(descending=True).indices.sort().indices
            weights[in_label] *= (max_count - rank.float()) / max_count
        weights = (bias + weights * (1 - bias)).pow(k)
        pos_loss = loss_cls(cls_score[pos].detach(), pos_labels, reduction_override="none")
        if pos_loss.dim() > 1:
            original, reweighted = pos_loss * label_weights[pos][:, None], pos_loss * weights[:, None]
        else:
            original, reweighted = pos_loss * label_weights[pos], pos_loss * weights
        label_weights[pos] = weights * (original.sum() / reweighted.sum())
    return label_weights


def carl_loss(
    cls_score: Tensor,
    labels: Tensor,
    deltas: Tensor,
    delta_targets: Tensor,
    loss_bbox: nn.Module,
    k: float = 1.0,
    bias: float = 0.2,
    avg_factor: float | None = None,
    sigmoid: bool = True,
    num_classes: int = 80,
) -> Tensor:
    """CARL: the positives' element-wise ``loss_bbox`` / ``avg_factor``, weighted by (bias + (1 - bias) x their
    class score)^k normalised to mean 1, summed. The weights are not detached: the regression loss teaches the
    classifier to score well-localised samples higher."""
    pos = ((labels >= 0) & (labels < num_classes)).nonzero().flatten()
    if pos.numel() == 0:
        return cls_score.sum() * 0
    pos_labels = labels[pos]
    probs = cls_score.sigmoid() if sigmoid else cls_score.softmax(-1)
    weights = (bias + (1 - bias) * probs[pos, pos_labels]).pow(k)
    weights = weights * (pos.numel() / weights.sum())
    if avg_factor is None:
        avg_factor = float(delta_targets.shape[0])
    loss = loss_bbox(deltas[pos], delta_targets[pos], reduction_override="none") / avg_factor
    return (loss * weights[:, None]).sum()
