"""Knowledge-distillation loss (Hinton et al. 2015) as Localization Distillation (Zheng et al. 2022, "Localization
Distillation for Dense Object Detection") applies it to box-side distributions: KL divergence between the
temperature-softened distributions of teacher and student."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from det_common.losses.utils import resolve_reduction, weight_reduce_loss
from detcore.interfaces import Loss


def knowledge_distillation_kl_div(pred: Tensor, soft_label: Tensor, T: float, detach_target: bool = True) -> Tensor:
    """(N,) T^2 x mean over the K bins of KL(softmax(soft_label / T) || softmax(pred / T)) for (N, K) logits."""
    if pred.shape != soft_label.shape:
        raise ValueError(f"knowledge distillation: pred {tuple(pred.shape)} and teacher {tuple(soft_label.shape)} differ")
    target = F.softmax(soft_label / T, dim=1)
    if detach_target:
        target = target.detach()
    return F.kl_div(F.log_softmax(pred / T, dim=1), target, reduction="none").mean(1) * (T * T)


class KnowledgeDistillationKLDivLoss(Loss):
    """KL divergence of student logits (N, K) from teacher logits (N, K) at temperature ``T``."""

    def __init__(self, reduction: str = "mean", loss_weight: float = 1.0, T: float = 10) -> None:
        super().__init__()
        if T < 1:
            raise ValueError(f"KnowledgeDistillationKLDivLoss: temperature T must be >= 1, got {T}")
        self.reduction = resolve_reduction(reduction, None)
        self.loss_weight = loss_weight
        self.T = T

    def forward(self, pred: Tensor, soft_label: Tensor, weight: Tensor | None = None,
                avg_factor: float | Tensor | None = None, reduction_override: str | None = None) -> Tensor:
        reduction = resolve_reduction(self.reduction, reduction_override)
        loss = knowledge_distillation_kl_div(pred, soft_label, self.T)
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
