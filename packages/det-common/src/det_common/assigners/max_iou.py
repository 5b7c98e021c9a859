"""IoU-threshold assignment of priors to ground truths (R-CNN, RetinaNet, RPN), MMDetection's ``MaxIoUAssigner``."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from det_common.bbox.overlaps import bbox_overlaps
from detcore.interfaces import Assigner, AssignResult
from detcore.structures import Instances


def empty_assign_result(num_priors: int, num_gts: int, device: torch.device) -> AssignResult:
    """Every prior negative (no gts) or ignored (no priors) with zero overlap."""
    return AssignResult(
        num_gts=num_gts,
        gt_inds=torch.zeros(num_priors, dtype=torch.long, device=device),
        max_overlaps=torch.zeros(num_priors, device=device),
        labels=torch.full((num_priors,), -1, dtype=torch.long, device=device),
    )


def labels_from_gt_inds(gt_inds: Tensor, gt_labels: Tensor | None) -> Tensor:
    """Class of each positive prior's gt, -1 elsewhere."""
    labels = torch.full_like(gt_inds, -1)
    if gt_labels is not None:
        pos = gt_inds > 0
        labels[pos] = gt_labels[gt_inds[pos] - 1].to(labels.dtype)
    return labels


class MaxIoUAssigner(Assigner):
    """Each prior takes the gt it overlaps most: positive if IoU >= ``pos_iou_thr``, negative if
    IoU in [0, ``neg_iou_thr``) (or in [lo, hi) for a pair), ignored (-1) otherwise.

    With ``match_low_quality`` every gt whose best IoU is >= ``min_pos_iou`` also claims its
    best prior (all tied best priors when ``gt_max_assign_all``), overriding that prior's
    argmax gt. Priors whose IoF with an ``ignored`` box exceeds ``ignore_iof_thr`` (> 0) are
    ignored; the IoF is over the prior's area when ``ignore_wrt_candidates``, else the ignored box's.
    """

    def __init__(
        self,
        pos_iou_thr: float,
        neg_iou_thr: float | Sequence[float],
        min_pos_iou: float = 0.0,
        gt_max_assign_all: bool = True,
        ignore_iof_thr: float = -1,
        ignore_wrt_candidates: bool = True,
        match_low_quality: bool = True,
    ) -> None:
        if not isinstance(neg_iou_thr, (int, float)):
            neg_iou_thr = tuple(neg_iou_thr)
            if len(neg_iou_thr) != 2:
                raise ValueError(f"MaxIoUAssigner: neg_iou_thr must be a float or a (lo, hi) pair, got {neg_iou_thr}")
        self.pos_iou_thr = pos_iou_thr
        self.neg_iou_thr = neg_iou_thr
        self.min_pos_iou = min_pos_iou
        self.gt_max_assign_all = gt_max_assign_all
        self.ignore_iof_thr = ignore_iof_thr
        self.ignore_wrt_candidates = ignore_wrt_candidates
        self.match_low_quality = match_low_quality

    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> AssignResult:
        priors = pred.priors[:, :4]
        gt_boxes = gt.boxes
        overlaps = bbox_overlaps(gt_boxes, priors)  # (G, N)
        if (
            self.ignore_iof_thr > 0
            and ignored is not None
            and len(ignored) > 0
            and priors.numel() > 0
            and gt_boxes.numel() > 0
        ):
            if self.ignore_wrt_candidates:
                ignore_max = bbox_overlaps(priors, ignored.boxes, mode="iof").max(dim=1).values
            else:
                ignore_max = bbox_overlaps(ignored.boxes, priors, mode="iof").max(dim=0).values
            overlaps[:, ignore_max > self.ignore_iof_thr] = -1
        return self.assign_wrt_overlaps(overlaps, gt.get("labels"))

    def assign_wrt_overlaps(self, overlaps: Tensor, gt_labels: Tensor | None = None) -> AssignResult:
        """Assignment from a (num_gts, num_priors) overlap matrix (entries of -1 mark ignored priors)."""
        num_gts, num_priors = overlaps.shape
        if num_gts == 0 or num_priors == 0:
            return empty_assign_result(num_priors, num_gts, overlaps.device)
        gt_inds = torch.full((num_priors,), -1, dtype=torch.long, device=overlaps.device)
        max_overlaps, argmax_overlaps = overlaps.max(dim=0)
        gt_max_overlaps, gt_argmax_overlaps = overlaps.max(dim=1)
        if isinstance(self.neg_iou_thr, tuple):
            lo, hi = self.neg_iou_thr
            gt_inds[(max_overlaps >= lo) & (max_overlaps < hi)] = 0
        else:
            gt_inds[(max_overlaps >= 0) & (max_overlaps < self.neg_iou_thr)] = 0
        pos = max_overlaps >= self.pos_iou_thr
        gt_inds[pos] = argmax_overlaps[pos] + 1
        if self.match_low_quality:
            for i in range(num_gts):
                if gt_max_overlaps[i] < self.min_pos_iou:
                    continue
                if self.gt_max_assign_all:
                    gt_inds[overlaps[i] == gt_max_overlaps[i]] = i + 1
                else:
                    gt_inds[gt_argmax_overlaps[i]] = i + 1
        return AssignResult(num_gts, gt_inds, max_overlaps, labels_from_gt_inds(gt_inds, gt_labels))
