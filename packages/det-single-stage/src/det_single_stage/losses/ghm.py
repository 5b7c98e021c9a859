"""Gradient Harmonizing Mechanism (Li, Liu & Wang 2019, "Gradient Harmonized Single-stage Detector"): each
example is weighed by the inverse density of examples with a similar gradient norm, so the many easy
negatives and the few outliers both count less. GHM-C for classification, GHM-R for box regression."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


class _GradientHarmonizer(Loss):
    """The shared histogram: ``bins`` equal bins of the gradient norm g in [0, 1], a running count per bin
    (exponential average with ``momentum``; 0 means this call's counts), weights total / count / non-empty bins.
    ``edges`` and ``acc_sum`` are buffers (saved with the model), as in MMDetection's checkpoints."""

    #: read by dense heads: the histogram depends on what one call sees, MMDetection calls it per pyramid level
    per_level = True

    def __init__(self, bins: int, momentum: float, last_edge: float, reduction: str, loss_weight: float) -> None:
        super().__init__()
        if bins < 1 or not 0 <= momentum < 1:
            raise ValueError(f"{type(self).__name__}: need bins >= 1 and 0 <= momentum < 1, got {bins}, {momentum}")
        self.bins = bins
        self.momentum = momentum
        edges = torch.arange(bins + 1, dtype=torch.float32) / bins
        edges[-1] = last_edge
        self.register_buffer("edges", edges)
        self.register_buffer("acc_sum", torch.zeros(bins))
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    def harmonizing_weights(self, g: Tensor, valid: Tensor, total: float) -> Tensor:
        """Weights (shaped like ``g``) of the ``valid`` elements by the density of their gradient norm ``g``."""
        weights = torch.zeros_like(g)
        filled = 0
        for i in range(self.bins):
            inside = (g >= self.edges[i]) & (g < self.edges[i + 1]) & valid
            count = int(inside.sum())
            if count == 0:
                continue
            filled += 1
            if self.momentum > 0:
                self.acc_sum[i] = self.momentum * self.acc_sum[i] + (1 - self.momentum) * count
                weights[inside] = total / self.acc_sum[i]
            else:
                weights[inside] = total / count
        return weights / filled if filled else weights


class GHMC(_GradientHarmonizer):
    """GHM-C: sigmoid BCE of logits (N, C) against labels (N,) (C = background) or targets (N, C), weighed by
    the density of g = |sigmoid - target| and averaged over the valid elements (``label_weight`` > 0).
    The head's ``avg_factor`` is not used: the harmonized weights already normalise."""

    needs_sampling = False

    def __init__(self, bins: int = 10, momentum: float = 0.0, use_sigmoid: bool = True, loss_weight: float = 1.0,
                 reduction: str = "mean") -> None:
        if not use_sigmoid:
            raise ValueError("GHMC: only the sigmoid form is defined (use_sigmoid=True)")
        super().__init__(bins, momentum, 1.0 + 1e-6, reduction, loss_weight)
        self.use_sigmoid = use_sigmoid

    def forward(self, pred: Tensor, target: Tensor, label_weight: Tensor, avg_factor: float | None = None,
                reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        if pred.dim() != target.dim():
            num_classes = pred.shape[-1]
            fg = (target >= 0) & (target < num_classes)
            onehot = pred.new_zeros(pred.shape)
            onehot[fg, target[fg].long()] = 1.0
            target = onehot
            label_weight = label_weight.reshape(-1, 1).expand_as(pred)
        target, label_weight = target.to(pred.dtype), label_weight.to(pred.dtype)
        valid = label_weight > 0
        total = max(float(valid.sum()), 1.0)
        g = (pred.detach().sigmoid() - target).abs()
        weights = self.harmonizing_weights(g, valid, total)
        loss = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
        return self.loss_weight * weight_reduce_loss(loss, weights, reduction, total)


class GHMR(_GradientHarmonizer):
    """GHM-R: the authentic smooth L1 sqrt(d^2 + mu^2) - mu of (N, 4) regression values, weighed by the density
    of its gradient norm |d| / sqrt(d^2 + mu^2) over the elements with ``label_weight`` > 0, averaged over the
    sum of ``label_weight``."""

    def __init__(self, mu: float = 0.02, bins: int = 10, momentum: float = 0.0, loss_weight: float = 1.0,
                 reduction: str = "mean") -> None:
        super().__init__(bins, momentum, 1e3, reduction, loss_weight)
        self.mu = mu

    def forward(self, pred: Tensor, target: Tensor, label_weight: Tensor, avg_factor: float | None = None,
                reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        diff = pred - target
        root = torch.sqrt(diff * diff + self.mu * self.mu)
        loss = root - self.mu
        g = (diff / root).abs().detach()
        total = max(float(label_weight.sum()), 1.0)
        weights = self.harmonizing_weights(g, label_weight > 0, total)
        return self.loss_weight * weight_reduce_loss(loss, weights, reduction, total)
