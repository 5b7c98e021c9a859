"""Element-wise weighting and reduction shared by every loss (``weight``, ``reduction``, ``avg_factor``)."""

from __future__ import annotations

import torch
from torch import Tensor

REDUCTIONS = ("none", "mean", "sum")


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """"none" keeps the shape, "sum" adds up, "mean" averages (an empty loss averages to 0)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()


def weight_reduce_loss(
    loss: Tensor, weight: Tensor | None = None, reduction: str = "mean", avg_factor: float | Tensor | None = None
) -> Tensor:
    """Multiply by ``weight`` (broadcast), then reduce; with ``avg_factor`` a "mean" is sum / avg_factor.

    ``avg_factor`` with reduction "sum" is an error (it would be silently ignored).
    """
    if weight is not None:
        if weight.dim() == loss.dim() - 1 and weight.shape == loss.shape[:-1]:
            weight = weight[..., None]
        loss = loss * weight
    if avg_factor is None:
        return reduce_loss(loss, reduction)
    if reduction == "mean":
        eps = torch.finfo(loss.dtype).eps if loss.is_floating_point() else 1e-12
        return loss.sum() / (avg_factor + eps)
    if reduction == "none":
        return loss
    raise ValueError('avg_factor can not be used with reduction="sum"')


def resolve_reduction(default: str, override: str | None) -> str:
    """The reduction to use: ``override`` when given, else the loss's own."""
    reduction = override if override is not None else default
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction
