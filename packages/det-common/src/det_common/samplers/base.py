"""Shared sampling logic: optionally prepend gts as proposals, pick positives then negatives, build the result."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import replace

import torch
from torch import Tensor

from detcore.interfaces import AssignResult, Sampler, SamplingResult
from detcore.structures import Instances


def build_sampling_result(
    pos_inds: Tensor, neg_inds: Tensor, priors: Tensor, gt_boxes: Tensor, assign_result: AssignResult,
    gt_flags: Tensor,
) -> SamplingResult:
    """The positives' priors, gt boxes, labels and gt indices (0-based) plus the negatives' priors."""
    pos_assigned = assign_result.gt_inds[pos_inds] - 1
    if gt_boxes.numel() == 0:
        pos_gt_boxes = gt_boxes.new_zeros((pos_inds.numel(), 4))
    else:
        pos_gt_boxes = gt_boxes[:, :4][pos_assigned]
    return SamplingResult(
        pos_inds=pos_inds,
        neg_inds=neg_inds,
        pos_priors=priors[pos_inds],
        neg_priors=priors[neg_inds],
        pos_gt_boxes=pos_gt_boxes,
        pos_gt_labels=assign_result.labels[pos_inds],
        pos_assigned_gt_inds=pos_assigned,
        pos_is_gt=gt_flags[pos_inds],
    )


class BaseSampler(Sampler):
    """Samples ``num`` priors with at most ``pos_fraction`` positives.

    ``neg_pos_ub`` >= 0 caps negatives at ``neg_pos_ub * max(1, num_pos)`` (MMDetection paper
    `000` §5.4); ``add_gt_as_proposals`` prepends the gt boxes to the priors as positives (the
    indices in the result then count them first). The caller's ``assign_result`` is not modified.
    """

    def __init__(self, num: int, pos_fraction: float, neg_pos_ub: float = -1, add_gt_as_proposals: bool = True) -> None:
        if num <= 0 or not 0.0 <= pos_fraction <= 1.0:
            raise ValueError(f"{type(self).__name__}: need num > 0 and 0 <= pos_fraction <= 1, got {num}, {pos_fraction}")
        self.num = num
        self.pos_fraction = pos_fraction
        self.neg_pos_ub = neg_pos_ub
        self.add_gt_as_proposals = add_gt_as_proposals

    @abstractmethod
    def _sample_pos(self, assign_result: AssignResult, priors: Tensor, num_expected: int, **context: object) -> Tensor:
        """Indices of at most ``num_expected`` positives."""

    @abstractmethod
    def _sample_neg(self, assign_result: AssignResult, priors: Tensor, num_expected: int, **context: object) -> Tensor:
        """Indices of at most ``num_expected`` negatives."""

    def sample(self, assign_result: AssignResult, pred: Instances, gt: Instances, **context: object) -> SamplingResult:
        priors = pred.priors[:, :4]
        gt_boxes = gt.boxes
        gt_flags = torch.zeros(priors.shape[0], dtype=torch.bool, device=priors.device)
        if self.add_gt_as_proposals and gt_boxes.shape[0] > 0:
            gt_labels = gt.get("labels")
            if gt_labels is None:
                raise ValueError(f"{type(self).__name__}: add_gt_as_proposals needs gt labels")
            priors = torch.cat([gt_boxes[:, :4].to(priors.dtype), priors], dim=0)
            assign_result = replace(assign_result)
            assign_result.add_gt_as_proposals(gt_labels)
            gt_flags = torch.cat([torch.ones(gt_boxes.shape[0], dtype=torch.bool, device=priors.device), gt_flags])
        num_expected_pos = int(self.num * self.pos_fraction)
        pos_inds = self._sample_pos(assign_result, priors, num_expected_pos, **context).unique()
        num_expected_neg = self.num - pos_inds.numel()
        if self.neg_pos_ub >= 0:
            num_expected_neg = min(num_expected_neg, int(self.neg_pos_ub * max(1, pos_inds.numel())))
        neg_inds = self._sample_neg(assign_result, priors, num_expected_neg, **context).unique()
        return build_sampling_result(pos_inds, neg_inds, priors, gt_boxes, assign_result, gt_flags)
