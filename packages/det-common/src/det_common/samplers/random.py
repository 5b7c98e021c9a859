"""Uniform random sampling of positives and negatives (R-CNN minibatches), MMDetection's ``RandomSampler``."""

from __future__ import annotations

import torch
from torch import Tensor

from det_common.samplers.base import BaseSampler
from detcore.interfaces import AssignResult


def random_choice(candidates: Tensor, num: int) -> Tensor:
    """``num`` distinct elements of ``candidates`` drawn uniformly (all of them if there are fewer)."""
    if candidates.numel() <= num:
        return candidates
    perm = torch.randperm(candidates.numel(), device=candidates.device)[:num]
    return candidates[perm]


class RandomSampler(BaseSampler):
    """Draws up to ``num * pos_fraction`` positives, then fills ``num`` with negatives, uniformly at random."""

    def _sample_pos(self, assign_result: AssignResult, priors: Tensor, num_expected: int, **context: object) -> Tensor:
        return random_choice(torch.nonzero(assign_result.gt_inds > 0).flatten(), max(num_expected, 0))

    def _sample_neg(self, assign_result: AssignResult, priors: Tensor, num_expected: int, **context: object) -> Tensor:
        return random_choice(torch.nonzero(assign_result.gt_inds == 0).flatten(), max(num_expected, 0))
