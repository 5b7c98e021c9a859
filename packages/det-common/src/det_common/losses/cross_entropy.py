"""Cross-entropy classification losses: softmax, sigmoid (binary per class) and per-class mask BCE."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def softmax_cross_entropy(
    pred: Tensor, label: Tensor, weight: Tensor | None = None, reduction: str = "mean",
    avg_factor: float | Tensor | None = None, class_weight: Tensor | None = None, ignore_index: int = -100,
    avg_non_ignore: bool = False,
) -> Tensor:
    """Softmax CE of logits (N, C) against labels (N,); ``avg_non_ignore`` averages over non-ignored labels only."""
    loss = F.cross_entropy(pred, label, weight=class_weight, reduction="none", ignore_index=ignore_index)
    if avg_factor is None and avg_non_ignore and reduction == "mean":
        avg_factor = int((label != ignore_index).sum().item())
    if weight is not None:
        weight = weight.float()
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def binary_cross_entropy(
    pred: Tensor, label: Tensor, weight: Tensor | None = None, reduction: str = "mean",
    avg_factor: float | Tensor | None = None, class_weight: Tensor | None = None, ignore_index: int = -100,
    avg_non_ignore: bool = False,
) -> Tensor:
    """Sigmoid BCE of logits (N, C) against labels (N,) in [0, C] (C = background: all zeros) or
    against targets shaped like ``pred``; ``class_weight`` is BCE's ``pos_weight``; rows whose
    label is ``ignore_index`` get weight 0."""
    valid = None
    if pred.dim() != label.dim():
        num_classes = pred.shape[-1]
        valid = (label >= 0) & (label != ignore_index)
        safe = torch.where(valid, label, torch.full_like(label, num_classes)).clamp(max=num_classes)
        target = F.one_hot(safe.long(), num_classes + 1)[..., :num_classes].to(pred.dtype)
        if weight is not None and weight.dim() == label.dim():
            weight = weight[..., None].expand_as(pred)
        valid = valid[..., None].expand_as(pred)
    else:
        target = label.to(pred.dtype)
        if ignore_index >= 0:
            valid = label != ignore_index
    if valid is not None:
        weight = valid.to(pred.dtype) if weight is None else weight.to(pred.dtype) * valid
        if avg_factor is None and avg_non_ignore and reduction == "mean":
            avg_factor = int(valid.sum().item())
    loss = F.binary_cross_entropy_with_logits(pred, target, pos_weight=class_weight, reduction="none")
    return weight_reduce_loss(loss, weight, reduction, avg_factor)


def mask_cross_entropy(pred: Tensor, target: Tensor, label: Tensor, class_weight: Tensor | None = None) -> Tensor:
    """Mean BCE of the mask logits (N, C, H, W) of each RoI's class ``label`` (N,) against targets (N, H, W)."""
    if pred.shape[0] == 0:
        return pred.sum() * 0
    inds = torch.arange(pred.shape[0], device=pred.device)
    pred_slice = pred[inds, label.long()] if pred.shape[1] > 1 else pred[:, 0]
    return F.binary_cross_entropy_with_logits(pred_slice, target.to(pred_slice.dtype), weight=class_weight,
                                              reduction="mean")


class CrossEntropyLoss(Loss):
    """Softmax CE (default), per-class sigmoid BCE (``use_sigmoid``) or mask BCE (``use_mask``).

    With ``use_mask``, ``forward(pred, target, label=...)`` needs each RoI's class ``label``.
    """

    def __init__(
        self,
        use_sigmoid: bool = False,
        use_mask: bool = False,
        reduction: str = "mean",
        class_weight: Sequence[float] | None = None,
        ignore_index: int = -100,
        loss_weight: float = 1.0,
        avg_non_ignore: bool = False,
    ) -> None:
        super().__init__()
        if use_sigmoid and use_mask:
            raise ValueError("CrossEntropyLoss: use_sigmoid and use_mask are exclusive")
        self.use_sigmoid = use_sigmoid
        self.use_mask = use_mask
        self.reduction = resolve_reduction(reduction, None)
        self.class_weight = list(class_weight) if class_weight is not None else None
        self.ignore_index = ignore_index
        self.loss_weight = loss_weight
        self.avg_non_ignore = avg_non_ignore

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None,
                label: Tensor | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        class_weight = pred.new_tensor(self.class_weight) if self.class_weight is not None else None
        if self.use_mask:
            if label is None:
                raise ValueError("CrossEntropyLoss(use_mask=True) needs `label`, the class of each RoI")
            return self.loss_weight * mask_cross_entropy(pred, target, label, class_weight)
        fn = binary_cross_entropy if self.use_sigmoid else softmax_cross_entropy
        loss = fn(pred, target, weight, reduction, avg_factor, class_weight, self.ignore_index, self.avg_non_ignore)
        return self.loss_weight * loss
