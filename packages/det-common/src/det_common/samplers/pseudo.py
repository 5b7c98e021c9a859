"""Takes every assigned prior: positives are gt_inds > 0, negatives gt_inds == 0 (dense heads)."""

from __future__ import annotations

import torch

from det_common.samplers.base import build_sampling_result
from detcore.interfaces import AssignResult, Sampler, SamplingResult
from detcore.structures import Instances


class PseudoSampler(Sampler):
    """No sampling: all positive and all negative priors, ignored ones (-1) dropped."""

    def __init__(self, **kwargs: object) -> None:
        if kwargs:
            raise TypeError(f"PseudoSampler takes no options, got {sorted(kwargs)}")

    def sample(self, assign_result: AssignResult, pred: Instances, gt: Instances, **context: object) -> SamplingResult:
        priors = pred.priors
        pos_inds = torch.nonzero(assign_result.gt_inds > 0).flatten()
        neg_inds = torch.nonzero(assign_result.gt_inds == 0).flatten()
        gt_flags = torch.zeros(priors.shape[0], dtype=torch.bool, device=priors.device)
        return build_sampling_result(pos_inds, neg_inds, priors, gt.boxes, assign_result, gt_flags)
