"""LDHead (Zheng et al. 2022, "Localization Distillation for Dense Object Detection"): a GFL head whose box-side
distributions at the positives also learn the teacher's (KL divergence at a temperature), besides GFL's losses."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from det_common.heads import DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_single_stage.heads.gfl_head import GFLHead
from detcore.registry import build
from detcore.structures import Batch

_LOSS_LD = {"type": "KnowledgeDistillationKLDivLoss", "loss_weight": 0.25, "T": 10}

#: the key of ``DenseOutputs.extras`` the distilling detector puts the teacher's side-distribution logits under
TEACHER_KEY = "teacher_bbox_preds"


class LDHead(GFLHead):
    """GFLHead plus ``loss_ld``: at each positive, the student's 4 side distributions against the teacher's (given
    in ``outs.extras["teacher_bbox_preds"]``, per level like ``bbox_preds``), weighted by the positive's best class
    score and averaged over the 4 sides. The box and distribution losses are averaged over the weights' sum."""

    def __init__(self, num_classes: int, in_channels: int, loss_ld: Mapping[str, Any] = _LOSS_LD,
                 **kwargs: Any) -> None:
        super().__init__(num_classes, in_channels, **kwargs)
        self.loss_ld = build("losses", loss_ld)

    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        if TEACHER_KEY not in outs.extras:
            raise ValueError(f"LDHead.loss needs the teacher's outputs in outs.extras[{TEACHER_KEY!r}]: build it "
                             "inside a KnowledgeDistillationSingleStageDetector")
        losses = super().loss_from_targets(outs, priors, targets, batch)
        reg = flatten_levels(outs.bbox_preds, self.dist_channels).reshape(-1, self.dist_channels)
        pos = targets.pos_inds
        if pos.numel() == 0:
            losses["loss_ld"] = reg.sum() * 0
            return losses
        teacher = flatten_levels(outs.extras[TEACHER_KEY], self.dist_channels).reshape(-1, self.dist_channels)
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        weights = cls.detach().sigmoid().max(dim=1).values[pos]
        losses["loss_ld"] = self.loss_ld(
            reg[pos].reshape(-1, self.reg_max + 1), teacher[pos].reshape(-1, self.reg_max + 1),
            weight=weights[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0,
        )
        return losses
