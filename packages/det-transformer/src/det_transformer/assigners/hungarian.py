"""One-to-one assignment of predictions to ground truths by the Hungarian algorithm (DETR's set matching)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from scipy.optimize import linear_sum_assignment

from detcore.interfaces import Assigner, AssignResult
from detcore.registry import build
from detcore.structures import Instances


class HungarianAssigner(Assigner):
    """Matches each ground truth to at most one prediction minimising the summed ``match_costs`` (Carion et al.,
    "End-to-End Object Detection with Transformers"; Kuhn's Hungarian method via scipy's ``linear_sum_assignment``).

    Unmatched predictions are background (``gt_inds`` 0). With no ground truth every prediction is background.
    With more ground truths than predictions every prediction is matched and the ground truths left over stay
    unmatched (the cheapest subset is kept): no error, but they give no loss, so set ``num_queries`` (or
    ``num_proposals``) above the largest number of objects per image.
    """

    def __init__(self, match_costs: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        if isinstance(match_costs, Mapping):
            match_costs = [match_costs]
        if not match_costs:
            raise ValueError("HungarianAssigner: match_costs is empty; give at least one cost table")
        self.match_costs = [build("match_costs", cfg) for cfg in match_costs]

    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> AssignResult:
        num_preds, num_gts = len(pred), len(gt)
        device = gt.labels.device
        gt_inds = torch.zeros(num_preds, dtype=torch.long, device=device)
        labels = torch.full((num_preds,), -1, dtype=torch.long, device=device)
        if num_gts == 0 or num_preds == 0:
            return AssignResult(num_gts, gt_inds, torch.zeros(num_preds, device=device), labels)
        cost = torch.stack([match_cost(pred, gt) for match_cost in self.match_costs]).sum(0)
        cost = cost.detach().cpu()
        if not torch.isfinite(cost).all():
            raise FloatingPointError(
                f"HungarianAssigner: the match cost has NaN/inf entries ({self.match_costs}); the predictions "
                "diverged (lower the learning rate or clip gradients)"
            )
        rows, cols = linear_sum_assignment(cost.numpy())
        rows = torch.as_tensor(rows, dtype=torch.long, device=device)
        cols = torch.as_tensor(cols, dtype=torch.long, device=device)
        gt_inds[rows] = cols + 1
        labels[rows] = gt.labels[cols]
        return AssignResult(num_gts, gt_inds, torch.zeros(num_preds, device=device), labels)
