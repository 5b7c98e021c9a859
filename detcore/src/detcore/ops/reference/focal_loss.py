"""Reference sigmoid focal loss (RetinaNet, Lin et al. 2017) against integer class targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detcore.ops.reference._checks import check_choice, check_floating, check_same_device, check_tensor

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
    pred = check_tensor(op, "pred", pred, 2, "[N, C] logits")
    target = check_tensor(op, "target", target, 1, "[N] int64 in [0, C]")
    check_floating(op, "pred", pred)
    check_choice(op, "reduction", reduction, REDUCTIONS)
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"{op}: `target` must hold integer class indices, got dtype {target.dtype}")
    num, num_classes = pred.shape
    if target.shape[0] != num:
        raise ValueError(f"{op}: `target` must have one label per row of `pred` ({num}), got {target.shape[0]}")
    if num > 0 and (bool((target < 0).any()) or bool((target > num_classes).any())):
        raise ValueError(
            f"{op}: `target` labels must lie in [0, {num_classes}] ({num_classes} = background), "
            f"got values in [{int(target.min())}, {int(target.max())}]"
        )
    if weight is not None:
        weight = check_tensor(op, "weight", weight, 1, "[N]")
        if weight.shape[0] != num:
            raise ValueError(f"{op}: `weight` must have one entry per row of `pred` ({num}), got {weight.shape[0]}")
    check_same_device(op, pred=pred, target=target, weight=weight)

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
