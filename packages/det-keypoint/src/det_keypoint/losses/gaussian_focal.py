"""Gaussian focal loss: the penalty-reduced pixel-wise focal loss of CornerNet (Law and Deng, "CornerNet:
Detecting Objects as Paired Keypoints"), also used by CenterNet ("Objects as Points") for its center heatmap."""

from __future__ import annotations

from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def gaussian_focal_loss(pred: Tensor, target: Tensor, alpha: float = 2.0, gamma: float = 4.0,
                        pos_weight: float = 1.0, neg_weight: float = 1.0) -> Tensor:
    """Element-wise loss of probabilities ``pred`` against a Gaussian heatmap ``target``: positives (target 1)
    get -(1-p)^alpha log p; the rest -p^alpha log(1-p), down-weighted by (1-target)^gamma near a peak."""
    eps = 1e-12
    positive = target.eq(1)
    pos_loss = -(pred + eps).log() * (1 - pred).pow(alpha) * positive
    neg_loss = -(1 - pred + eps).log() * pred.pow(alpha) * (1 - target).pow(gamma)
    return pos_weight * pos_loss + neg_weight * neg_loss


class GaussianFocalLoss(Loss):
    """Focal loss for Gaussian heatmap targets (CornerNet); ``pred`` are probabilities (after a sigmoid).
    Usually averaged by the number of peaks (``avg_factor``)."""

    def __init__(self, alpha: float = 2.0, gamma: float = 4.0, reduction: str = "mean", loss_weight: float = 1.0,
                 pos_weight: float = 1.0, neg_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight
        self.pos_weight = pos_weight
        self.neg_weight = neg_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = gaussian_focal_loss(pred, target, self.alpha, self.gamma, self.pos_weight, self.neg_weight)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
