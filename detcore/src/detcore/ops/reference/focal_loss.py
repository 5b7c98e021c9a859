"""Reference sigmoid focal loss (RetinaNet, Lin et al. 2017) against integer class targets."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from detcore.ops.checks import check_focal_loss_args

REDUCTIONS = ("none", "mean", "sum")


def sigmoid_focal_loss(
    pred: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Element-wise focal loss of logits pred [N, C] against one_hot(target) (target == C is background, all zeros).

    loss = alpha_t * (1 - p_t)^gamma * BCE(pred, t) with alpha_t = alpha for positives and 1 - alpha for negatives
    (alpha < 0 disables it, as in torchvision); `weight` [N] scales rows; reduction "none" [N, C], "mean" (over all
    N*C elements; 0 for empty input) or "sum".
    """
    op = "sigmoid_focal_loss"
    pred, target, weight = check_focal_loss_args(op, pred, target, weight, reduction, REDUCTIONS)
    num_classes = pred.shape[1]

    one_hot = F.one_hot(target.long(), num_classes + 1)[:, :num_classes].to(pred.dtype)
    prob = pred.sigmoid()
    bce = F.binary_cross_entropy_with_logits(pred, one_hot, reduction="none")
    p_t = prob * one_hot + (1 - prob) * (1 - one_hot)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * one_hot + (1 - alpha) * (1 - one_hot)) * loss
    if weight is not None:
        loss = loss * weight[:, None].to(loss.dtype)
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()
