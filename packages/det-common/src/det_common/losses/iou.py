"""IoU-based box regression losses: IoU (UnitBox), GIoU, DIoU, CIoU and Bounded IoU (MMDetection paper `000` §5.1)."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from det_common.bbox.overlaps import bbox_overlaps
from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss

IOU_MODES = ("log", "linear", "square")


class _BoxLoss(Loss):
    """Shared forward of losses over aligned xyxy boxes (N, 4): a (N, 4) ``weight`` is averaged per box."""

    def __init__(self, eps: float, reduction: str, loss_weight: float) -> None:
        super().__init__()
        self.eps = eps
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight

    @abstractmethod
    def box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Per-box loss (N,) (or (N, 4) for element-wise losses)."""

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        if pred.shape != target.shape or pred.shape[-1] != 4:
            raise ValueError(f"{type(self).__name__}: pred {tuple(pred.shape)} and target {tuple(target.shape)} must be (N, 4)")
        loss = self.box_loss(pred, target)
        if weight is not None and weight.dim() > loss.dim():
            weight = weight.mean(-1)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)


class IoULoss(_BoxLoss):
    """UnitBox IoU loss: -log(IoU) ("log"), 1 - IoU ("linear") or 1 - IoU^2 ("square"); IoU clamped to eps.

    ``linear=True`` is the older spelling of ``mode="linear"``.
    """

    def __init__(self, linear: bool = False, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0,
                 mode: str = "log") -> None:
        super().__init__(eps, reduction, loss_weight)
        if linear:
            mode = "linear"
        if mode not in IOU_MODES:
            raise ValueError(f"IoULoss: mode must be one of {IOU_MODES}, got {mode!r}")
        self.mode = mode

    def box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        ious = bbox_overlaps(pred, target, is_aligned=True).clamp(min=self.eps)
        if self.mode == "linear":
            return 1 - ious
        if self.mode == "square":
            return 1 - ious**2
        return -ious.log()


class GIoULoss(_BoxLoss):
    """1 - GIoU (Rezatofighi et al. 2019), via ``torchvision.ops.generalized_box_iou_loss``."""

    def __init__(self, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__(eps, reduction, loss_weight)

    def box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return generalized_box_iou_loss(pred, target, reduction="none", eps=self.eps)


class DIoULoss(_BoxLoss):
    """1 - IoU + center distance^2 / enclosing diagonal^2 (Zheng et al. 2020), via torchvision."""

    def __init__(self, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__(eps, reduction, loss_weight)

    def box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return distance_box_iou_loss(pred, target, reduction="none", eps=self.eps)


class CIoULoss(_BoxLoss):
    """DIoU loss + alpha * v, v the aspect-ratio consistency term (Zheng et al. 2020), via torchvision
    (alpha = v / (1 - IoU + v), without a gradient, for every box)."""

    def __init__(self, eps: float = 1e-6, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__(eps, reduction, loss_weight)

    def box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return complete_box_iou_loss(pred, target, reduction="none", eps=self.eps)


class BoundedIoULoss(_BoxLoss):
    """Bounded IoU loss (Tychsen-Smith & Petersson 2018): smooth-L1 (``beta``) of per-coordinate IoU bounds.

    Element-wise (N, 4): center terms 1 - max(0, (w_t - 2|dx|) / (w_t + 2|dx|)) and size terms
    1 - min(w_t / w_p, w_p / w_t), for x and y.
    """

    def __init__(self, beta: float = 0.2, eps: float = 1e-3, reduction: str = "mean", loss_weight: float = 1.0) -> None:
        super().__init__(eps, reduction, loss_weight)
        self.beta = beta

    def box_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        eps = self.eps
        pred_ctr = (pred[:, :2] + pred[:, 2:]) * 0.5
        pred_wh = pred[:, 2:] - pred[:, :2]
        target_ctr = (target[:, :2] + target[:, 2:]) * 0.5
        target_wh = target[:, 2:] - target[:, :2]
        d = (target_ctr - pred_ctr).abs()
        loss_ctr = 1 - torch.clamp((target_wh - 2 * d) / (target_wh + 2 * d + eps), min=0)
        loss_wh = 1 - torch.minimum(target_wh / (pred_wh + eps), pred_wh / (target_wh + eps))
        comb = torch.stack([loss_ctr[:, 0], loss_ctr[:, 1], loss_wh[:, 0], loss_wh[:, 1]], dim=-1)
        return torch.where(comb < self.beta, 0.5 * comb * comb / self.beta, comb - 0.5 * self.beta)

    def forward(self, pred: Tensor, target: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        if weight is not None and weight.dim() == 1:
            weight = weight[:, None].expand(-1, 4)
        return super().forward(pred, target, weight, avg_factor, reduction_override)
