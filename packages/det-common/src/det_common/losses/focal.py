"""Sigmoid focal loss of RetinaNet (Lin et al. 2017)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore import ops
from detcore.interfaces import Loss


def soft_sigmoid_focal_loss(pred: Tensor, target: Tensor, gamma: float = 2.0, alpha: float = 0.25) -> Tensor:
    """Element-wise focal loss of logits against targets in [0, 1] shaped like ``pred`` (e.g. one-hot)."""
    prob = pred.sigmoid()
    bce = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss


class FocalLoss(Loss):
    """alpha_t * (1 - p_t)^gamma * BCE of logits (N, C) against labels (N,) in [0, C] (C = background)
    via ``detcore.ops.sigmoid_focal_loss``, or against float targets shaped like ``pred``.

    ``weight`` is (N,) per prior or (N, C) per element. It weighs every prior itself, so dense heads
    using it sample no anchors (``needs_sampling``).
    """

    #: read by dense heads: False means every prior is weighed, no sampler is used
    needs_sampling = False

    def __init__(self, use_sigmoid: bool = True, gamma: float = 2.0, alpha: float = 0.25, reduction: str = "mean",
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError("FocalLoss: only the sigmoid focal loss is defined (use_sigmoid=True)")
        self.use_sigmoid = use_sigmoid
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        if target.dim() == pred.dim():
            loss = soft_sigmoid_focal_loss(pred, target.to(pred.dtype), self.gamma, self.alpha)
        else:
            loss = ops.sigmoid_focal_loss(pred, target, self.gamma, self.alpha, None, "none")
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
