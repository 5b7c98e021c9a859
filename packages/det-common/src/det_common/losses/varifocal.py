"""Varifocal loss of VarifocalNet (Zhang et al. 2021, "VarifocalNet: An IoU-aware Dense Object Detector", `002`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def varifocal_loss(pred: Tensor, target: Tensor, alpha: float = 0.75, gamma: float = 2.0,
                   iou_weighted: bool = True) -> Tensor:
    """Element-wise varifocal loss of logits ``pred`` against IoU-aware targets ``target`` (same shape, in [0, 1]).

    BCE weighted asymmetrically (`002` eq. 2): a positive (target q > 0) by q itself (``iou_weighted``)
    or 1, so that well-localised positives count most; a negative by ``alpha * p**gamma``, the focal
    down-weighting of the many easy negatives. As in the authors' code, the weight is not detached.
    """
    if pred.shape != target.shape:
        raise ValueError(f"varifocal_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have one shape")
    target = target.to(pred.dtype)
    positive = target > 0
    negative_weight = alpha * (pred.sigmoid() - target).abs().pow(gamma)
    positive_weight = target if iou_weighted else torch.ones_like(target)
    weight = torch.where(positive, positive_weight, negative_weight)
    return F.binary_cross_entropy_with_logits(pred, target, reduction="none") * weight


class VarifocalLoss(Loss):
    """Sigmoid varifocal loss of (N, C) logits against (N, C) IoU-aware classification targets: each
    positive's IoU with its ground truth at its class, 0 elsewhere (MMDetection's ``VarifocalLoss``)."""

    #: read by dense heads: every prior is weighed, no sampler is used
    needs_sampling = False

    def __init__(self, use_sigmoid: bool = True, alpha: float = 0.75, gamma: float = 2.0, iou_weighted: bool = True,
                 reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError("VarifocalLoss: only the sigmoid form is defined (use_sigmoid=True)")
        if alpha < 0:
            raise ValueError(f"VarifocalLoss: alpha must be >= 0, got {alpha}")
        self.use_sigmoid = use_sigmoid
        self.alpha = alpha
        self.gamma = gamma
        self.iou_weighted = iou_weighted
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = varifocal_loss(pred, target, self.alpha, self.gamma, self.iou_weighted)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
