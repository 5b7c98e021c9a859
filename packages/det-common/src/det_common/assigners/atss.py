"""Adaptive Training Sample Selection (Zhang et al. 2020), MMDetection's ``ATSSAssigner``."""

from __future__ import annotations

import torch

from det_common.assigners.max_iou import empty_assign_result, labels_from_gt_inds
from det_common.bbox.overlaps import bbox_overlaps
from detcore.interfaces import Assigner, AssignResult
from detcore.structures import Instances


class ATSSAssigner(Assigner):
    """Per gt, the ``topk`` priors nearest its center on every level are candidates; those with
    IoU >= mean + std of the candidates' IoUs and whose center lies inside the gt are positive
    (a prior claimed by several gts takes the highest IoU); every other prior is negative.

    Needs ``pred.level_ids`` (the pyramid level of each prior). Priors whose IoF with an
    ``ignored`` box exceeds ``ignore_iof_thr`` (> 0) are ignored. ``max_overlaps`` is each
    prior's best IoU over the gts (its assigned gt's for positives).
    """

    def __init__(self, topk: int = 9, ignore_iof_thr: float = -1) -> None:
        self.topk = topk
        self.ignore_iof_thr = ignore_iof_thr

    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> AssignResult:
        level_ids = pred.get("level_ids")
        if level_ids is None:
            raise ValueError("ATSSAssigner.assign needs pred.level_ids (the pyramid level of each prior)")
        priors = pred.priors[:, :4]
        gt_boxes = gt.boxes
        num_gts, num_priors = gt_boxes.shape[0], priors.shape[0]
        if num_gts == 0 or num_priors == 0:
            return empty_assign_result(num_priors, num_gts, priors.device)

        overlaps = bbox_overlaps(priors, gt_boxes)  # (N, G)
        gt_ctr = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        prior_ctr = (priors[:, :2] + priors[:, 2:]) / 2
        distances = torch.cdist(prior_ctr, gt_ctr)  # (N, G)
        gt_inds = torch.zeros(num_priors, dtype=torch.long, device=priors.device)
        if self.ignore_iof_thr > 0 and ignored is not None and len(ignored) > 0:
            ignore_max = bbox_overlaps(priors, ignored.boxes, mode="iof").max(dim=1).values
            ignore_mask = ignore_max > self.ignore_iof_thr
            distances[ignore_mask, :] = float("inf")
            gt_inds[ignore_mask] = -1

        candidates = []
        for level in torch.unique(level_ids):
            level_inds = torch.nonzero(level_ids == level).flatten()
            k = min(self.topk, level_inds.numel())
            _, idx = distances[level_inds].topk(k, dim=0, largest=False)
            candidates.append(level_inds[idx])
        candidate_idxs = torch.cat(candidates, dim=0)  # (K, G)
        gt_cols = torch.arange(num_gts, device=priors.device)
        candidate_overlaps = overlaps[candidate_idxs, gt_cols[None, :]]
        threshold = candidate_overlaps.mean(0) + candidate_overlaps.std(0)
        is_pos = candidate_overlaps >= threshold[None, :]

        cand_ctr = prior_ctr[candidate_idxs]  # (K, G, 2)
        inside = torch.stack(
            [
                cand_ctr[..., 0] - gt_boxes[None, :, 0],
                cand_ctr[..., 1] - gt_boxes[None, :, 1],
                gt_boxes[None, :, 2] - cand_ctr[..., 0],
                gt_boxes[None, :, 3] - cand_ctr[..., 1],
            ],
            dim=-1,
        ).min(dim=-1).values > 0.01
        is_pos = is_pos & inside

        masked = torch.full_like(overlaps, float("-inf"))
        pos_rows, pos_cols = candidate_idxs[is_pos], gt_cols[None, :].expand_as(candidate_idxs)[is_pos]
        masked[pos_rows, pos_cols] = overlaps[pos_rows, pos_cols]
        best, argbest = masked.max(dim=1)
        positive = best != float("-inf")
        gt_inds[positive] = argbest[positive] + 1
        max_overlaps = torch.where(positive, best, overlaps.max(dim=1).values)
        return AssignResult(num_gts, gt_inds, max_overlaps, labels_from_gt_inds(gt_inds, gt.get("labels")))
