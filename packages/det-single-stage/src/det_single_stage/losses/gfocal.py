"""Generalized Focal Loss (Li et al. 2020): Quality Focal Loss (a focal BCE against a soft IoU target of the
labelled class) and Distribution Focal Loss (cross-entropy pulling a side's distribution onto the two bins
around its target)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def quality_focal_loss(pred: Tensor, labels: Tensor, scores: Tensor, beta: float = 2.0) -> Tensor:
    """(N,) QFL of logits (N, C): every class is pushed to 0 with weight sigmoid^beta, the labelled class
    (``labels`` in [0, C); C = background) to its ``scores`` (IoU) with weight |score - sigmoid|^beta."""
    prob = pred.sigmoid()
    loss = F.binary_cross_entropy_with_logits(pred, pred.new_zeros(pred.shape), reduction="none") * prob.pow(beta)
    num_classes = pred.shape[1]
    pos = ((labels >= 0) & (labels < num_classes)).nonzero().flatten()
    if pos.numel() > 0:
        cls = labels[pos].long()
        target = scores[pos].to(pred.dtype)
        factor = (target - prob[pos, cls]).abs().pow(beta)
        loss = loss.clone()
        loss[pos, cls] = F.binary_cross_entropy_with_logits(pred[pos, cls], target, reduction="none") * factor
    return loss.sum(dim=1)


def distribution_focal_loss(pred: Tensor, label: Tensor) -> Tensor:
    """(N,) DFL of bin logits (N, n + 1) against continuous targets ``label`` (N,) in [0, n): cross-entropy to
    the bins left and right of the target, weighted by the target's distance to the other bin."""
    left = label.long()
    right = left + 1
    weight_left = right.to(label.dtype) - label
    weight_right = label - left.to(label.dtype)
    return (F.cross_entropy(pred, left, reduction="none") * weight_left
            + F.cross_entropy(pred, right, reduction="none") * weight_right)


class QualityFocalLoss(Loss):
    """QFL; ``forward(pred, (labels, scores), weight, avg_factor)`` with ``weight`` (N,) per prior.

    It weighs every prior itself, so dense heads using it sample no anchors (``needs_sampling``).
    """

    needs_sampling = False

    def __init__(self, use_sigmoid: bool = True, beta: float = 2.0, reduction: str = "mean",
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError("QualityFocalLoss: only the sigmoid form is defined (use_sigmoid=True)")
        self.use_sigmoid = use_sigmoid
        self.beta = beta
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: tuple[Tensor, Tensor], weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        if not isinstance(target, (tuple, list)) or len(target) != 2:
            raise ValueError("QualityFocalLoss: target must be (labels (N,), quality scores (N,))")
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = quality_focal_loss(pred, target[0], target[1], self.beta)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


class DistributionFocalLoss(Loss):
    """DFL over (N, n + 1) bin logits against (N,) continuous targets, with optional (N,) ``weight``."""

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = distribution_focal_loss(pred, target)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
