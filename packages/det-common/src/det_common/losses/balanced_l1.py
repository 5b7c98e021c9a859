"""Balanced L1 loss of Libra R-CNN (Pang et al. 2019)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def balanced_l1(pred: Tensor, target: Tensor, alpha: float = 0.5, gamma: float = 1.5, beta: float = 1.0) -> Tensor:
    """Element-wise balanced L1: promotes the gradients of inliers (d < beta) with b = e^(gamma/alpha) - 1."""
    if beta <= 0:
        raise ValueError(f"balanced_l1: beta must be > 0, got {beta}")
    diff = (pred - target).abs()
    b = math.exp(gamma / alpha) - 1
    inlier = alpha / b * (b * diff + 1) * torch.log(b * diff / beta + 1) - alpha * diff
    outlier = gamma * diff + gamma / b - alpha * beta
    return torch.where(diff < beta, inlier, outlier)


class BalancedL1Loss(Loss):
    """Balanced L1 loss with MMDetection's defaults alpha=0.5, gamma=1.5, beta=1.0."""

    def __init__(self, alpha: float = 0.5, gamma: float = 1.5, beta: float = 1.0, reduction: str = "mean",
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.gamma, self.beta = alpha, gamma, beta
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = balanced_l1(pred, target, self.alpha, self.gamma, self.beta)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
