"""Smooth L1 (Girshick 2015) and L1 regression losses (MMDetection paper `000` §5.1)."""

from __future__ import annotations

import torch
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def smooth_l1(pred: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Element-wise 0.5 * d^2 / beta if d < beta else d - 0.5 * beta, with d = |pred - target|."""
    if beta < 0:
        raise ValueError(f"smooth_l1: beta must be >= 0, got {beta}")
    diff = (pred - target).abs()
    if beta == 0:
        return diff
    return torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta)


class SmoothL1Loss(Loss):
    """Smooth L1 loss; ``beta`` is the switch point between the quadratic and linear parts."""

    def __init__(self, beta: float = 1.0, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        self.beta = beta
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = smooth_l1(pred, target, self.beta)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


class L1Loss(Loss):
    """L1 loss |pred - target|."""

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = (pred - target).abs()
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
