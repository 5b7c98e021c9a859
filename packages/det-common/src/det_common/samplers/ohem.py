"""Online hard example mining (Shrivastava et al. 2016): keep the candidates with the largest loss."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from det_common.samplers.base import BaseSampler
from detcore.interfaces import AssignResult

HardLossFn = Callable[[Tensor, Tensor], Tensor]


class OHEMSampler(BaseSampler):
    """Like ``RandomSampler`` but picks the positives and negatives with the highest loss.

    Context needed by ``sample``: ``loss_fn(boxes (K, 4), labels (K,)) -> loss (K,)``, the
    per-candidate loss used for ranking; it is called without gradients. RoI heads built on
    ``BaseRoIHead`` pass their ``candidate_loss`` (the stage's classification loss on the RoI
    features of ``boxes``, as MMDetection's OHEM does). Positives get their assigned class;
    negatives get ``background_label`` (context, default -1; an RoI head passes its ``num_classes``).
    """

    def _hardest(self, inds: Tensor, priors: Tensor, labels: Tensor, num_expected: int, context: dict) -> Tensor:
        if inds.numel() <= num_expected:
            return inds
        loss_fn = context.get("loss_fn")
        if not callable(loss_fn):
            raise ValueError("OHEMSampler.sample needs the context loss_fn(boxes, labels) -> per-box loss")
        with torch.no_grad():
            loss = loss_fn(priors[inds], labels)
        if loss.shape != (inds.numel(),):
            raise ValueError(f"OHEMSampler: loss_fn must return one loss per box ({inds.numel()}), got {tuple(loss.shape)}")
        _, top = loss.topk(num_expected)
        return inds[top]

    def _sample_pos(self, assign_result: AssignResult, priors: Tensor, num_expected: int, **context: object) -> Tensor:
        inds = torch.nonzero(assign_result.gt_inds > 0).flatten()
        return self._hardest(inds, priors, assign_result.labels[inds], max(num_expected, 0), context)

    def _sample_neg(self, assign_result: AssignResult, priors: Tensor, num_expected: int, **context: object) -> Tensor:
        inds = torch.nonzero(assign_result.gt_inds == 0).flatten()
        background = int(context.get("background_label", -1))  # type: ignore[arg-type]
        labels = torch.full((inds.numel(),), background, dtype=torch.long, device=inds.device)
        return self._hardest(inds, priors, labels, max(num_expected, 0), context)
