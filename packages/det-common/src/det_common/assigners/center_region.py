"""Center-region assignment of FSAF (Zhu et al. 2019, "Feature Selective Anchor-Free Module for Single-Shot
Object Detection"): a prior is positive for the smallest box whose central region it lies in; priors that
touch another box's region are "shadowed" for that box's class (that class is ignored there, not negative)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from det_common.bbox import bbox_overlaps, bbox_rescale
from detcore.interfaces import Assigner, AssignResult
from detcore.structures import Instances


@dataclass
class CenterRegionAssignResult(AssignResult):
    """An ``AssignResult`` plus ``shadowed_labels`` (K, 2): (prior index, class) pairs whose classification
    loss for that class is ignored."""

    shadowed_labels: Tensor = field(default_factory=lambda: torch.zeros(0, 2, dtype=torch.long))


def centers_inside(points: Tensor, boxes: Tensor) -> Tensor:
    """(P, G): whether each point (P, 2) lies strictly inside each box (G, 4)."""
    x, y = points[:, 0, None], points[:, 1, None]
    return (x > boxes[None, :, 0]) & (x < boxes[None, :, 2]) & (y > boxes[None, :, 1]) & (y < boxes[None, :, 3])


def area_priority(boxes: Tensor) -> Tensor:
    """(G,) rank of each box, the smallest highest (G - 1), the largest 0; equal areas by index."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = areas.sort(descending=True, stable=True).indices
    return order.argsort()


class CenterRegionAssigner(Assigner):
    """Assigns prior boxes by where they fall in the ground truths.

    A prior is in a box's core when its center is inside the box and its IoF with the box scaled by
    ``pos_scale`` about its center exceeds ``min_pos_iof``; among several such boxes the smallest wins. A
    prior whose IoF with the box scaled by ``neg_scale`` exceeds ``min_pos_iof`` without being in the core,
    or whose core another box won, shadows that box's class (``shadowed_labels``); when that is the class it
    was assigned, it becomes a negative with that class ignored (``foreground_dominate`` keeps it positive).
    Centers inside ``ignored`` boxes scaled by ``ignore_gt_scale`` are ignored (-1).
    """

    def __init__(self, pos_scale: float, neg_scale: float, min_pos_iof: float = 0.01, ignore_gt_scale: float = 0.5,
                 foreground_dominate: bool = False) -> None:
        self.pos_scale = pos_scale
        self.neg_scale = neg_scale
        self.min_pos_iof = min_pos_iof
        self.ignore_gt_scale = ignore_gt_scale
        self.foreground_dominate = foreground_dominate

    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> CenterRegionAssignResult:
        priors = pred.priors
        if priors.dim() != 2 or priors.shape[1] != 4:
            raise ValueError(f"CenterRegionAssigner: priors must be boxes (N, 4), got {tuple(priors.shape)}")
        num_priors, num_gts = priors.shape[0], len(gt)
        device = priors.device
        gt_inds = torch.zeros(num_priors, dtype=torch.long, device=device)
        max_overlaps = priors.new_zeros(num_priors)
        shadowed = torch.zeros(0, 2, dtype=torch.long, device=device)
        centers = (priors[:, :2] + priors[:, 2:]) * 0.5
        if num_gts > 0 and num_priors > 0:
            core_iof = bbox_overlaps(priors, bbox_rescale(gt.boxes, self.pos_scale), mode="iof")
            in_core = centers_inside(centers, gt.boxes) & (core_iof > self.min_pos_iof)
            shadow_iof = bbox_overlaps(priors, bbox_rescale(gt.boxes, self.neg_scale), mode="iof")
            in_shadow = (shadow_iof > self.min_pos_iof) & ~in_core
            priority = torch.where(in_core, area_priority(gt.boxes)[None], torch.full_like(in_core, -1, dtype=torch.long))
            best = priority.argmax(dim=1)
            matched = in_core.any(dim=1)
            gt_inds = torch.where(matched, best + 1, gt_inds)
            max_overlaps = torch.where(matched, core_iof.gather(1, best[:, None])[:, 0], max_overlaps)
            lost = in_core.clone()
            lost[matched, best[matched]] = False
            shadowed = torch.nonzero(in_shadow | lost)
        if ignored is not None and len(ignored) > 0:
            in_ignored = centers_inside(centers, bbox_rescale(ignored.boxes, self.ignore_gt_scale)).any(dim=1)
            gt_inds[in_ignored] = -1
        labels = torch.full_like(gt_inds, -1)
        pos = gt_inds > 0
        labels[pos] = gt.labels[gt_inds[pos] - 1].to(labels.dtype)
        if shadowed.numel() > 0:
            shadowed[:, 1] = gt.labels[shadowed[:, 1]].to(shadowed.dtype)
            same_class = labels[shadowed[:, 0]] == shadowed[:, 1]
            if self.foreground_dominate:
                shadowed = shadowed[~same_class]
            else:
                labels[shadowed[same_class, 0]] = -1
                gt_inds[shadowed[same_class, 0]] = 0
        return CenterRegionAssignResult(num_gts, gt_inds, max_overlaps, labels, shadowed_labels=shadowed)
