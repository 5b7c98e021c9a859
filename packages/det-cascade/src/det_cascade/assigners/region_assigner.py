"""Cascade RPN's region assigner (Vu et al. 2019, "Cascade RPN: Delving into High-Quality Region Proposal
Network with Adaptive Convolution"): anchors are positive by where their centers fall, not by IoU."""

from __future__ import annotations

import torch
from torch import Tensor

from detcore.interfaces import Assigner, AssignResult
from detcore.structures import Instances

from det_common.assigners.max_iou import empty_assign_result


def region_on_level(box: Tensor, ratio: float, stride: float) -> Tensor:
    """``(x1, y1, x2, y2)`` of the region ``ratio`` in from each side of ``box``, in the level's cells, rounded."""
    cells = box / stride
    near = (1 - ratio) * cells[:2] + ratio * cells[2:]
    far = ratio * cells[:2] + (1 - ratio) * cells[2:]
    return torch.round(torch.cat([near, far]))


def centers_inside(centers: Tensor, region: Tensor) -> Tensor:
    """(P,) whether each (x, y) center (in cells) lies inside ``region`` (borders included)."""
    return (centers >= region[:2]).all(dim=1) & (centers <= region[2:]).all(dim=1)


class RegionAssigner(Assigner):
    """Each ground truth goes to one pyramid level by its scale: ``floor(log2(sqrt(area) / (anchor_scale *
    stride_0)) + 0.5)``, clamped to the levels. On that level, anchors whose centers fall in the box's
    central region (``center_ratio`` of its size) are positive and the others in its ``ignore_ratio``
    region ignored; on the levels just above and below, the anchors in the ignore region are ignored.
    Every other anchor is negative. A later ground truth overrides an earlier one on the same anchor.

    ``pred`` needs ``priors`` (anchors), ``level_ids`` and ``strides`` (each prior's level stride);
    the Cascade RPN stage sets them and ``anchor_scale`` (its anchor generator's scale).
    """

    def __init__(self, center_ratio: float = 0.2, ignore_ratio: float = 0.5, anchor_scale: float = 8.0) -> None:
        if not 0 < center_ratio <= ignore_ratio <= 1:
            raise ValueError(
                f"RegionAssigner: need 0 < center_ratio <= ignore_ratio <= 1, got {center_ratio}, {ignore_ratio}"
            )
        self.center_ratio = center_ratio
        self.ignore_ratio = ignore_ratio
        self.anchor_scale = anchor_scale

    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> AssignResult:
        if ignored is not None and len(ignored) > 0:
            raise ValueError("RegionAssigner does not support ignored regions; drop them from the dataset")
        for field in ("level_ids", "strides"):
            if not pred.has(field):
                raise ValueError(f"RegionAssigner.assign needs pred.{field} (set by the Cascade RPN stage head)")
        anchors, level_ids, strides = pred.priors[:, :4], pred.level_ids, pred.strides
        num_gts, num_priors = len(gt), anchors.shape[0]
        if num_gts == 0 or num_priors == 0:
            return empty_assign_result(num_priors, num_gts, anchors.device)

        num_levels = int(level_ids.max()) + 1
        level_stride = [float(strides[level_ids == level][0]) if (level_ids == level).any() else 0.0
                        for level in range(num_levels)]
        centers = (anchors[:, :2] + anchors[:, 2:]) / 2 / strides[:, None]
        boxes = gt.boxes[:, :4]
        scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt()
        smallest = scale.new_tensor(self.anchor_scale * level_stride[0])
        target_levels = torch.floor(torch.log2(scale) - torch.log2(smallest) + 0.5).clamp(0, num_levels - 1).long()

        gt_inds = torch.zeros(num_priors, dtype=torch.long, device=anchors.device)
        next_to_gt = torch.zeros(num_priors, dtype=torch.bool, device=anchors.device)
        center_margin, ignore_margin = (1 - self.center_ratio) / 2, (1 - self.ignore_ratio) / 2
        for j in range(num_gts):
            level = int(target_levels[j])
            on_level = level_ids == level
            stride = level_stride[level]
            in_ignore = on_level & centers_inside(centers, region_on_level(boxes[j], ignore_margin, stride))
            gt_inds[in_ignore] = -1
            in_center = on_level & centers_inside(centers, region_on_level(boxes[j], center_margin, stride))
            gt_inds[in_center] = j + 1
            for neighbour in (level - 1, level + 1):
                if 0 <= neighbour < num_levels:
                    region = region_on_level(boxes[j], ignore_margin, level_stride[neighbour])
                    next_to_gt |= (level_ids == neighbour) & centers_inside(centers, region)
        gt_inds[next_to_gt] = -1

        labels = torch.full_like(gt_inds, -1)
        positive = gt_inds > 0
        if gt.has("labels"):
            labels[positive] = gt.labels[gt_inds[positive] - 1].long()
        return AssignResult(num_gts, gt_inds, anchors.new_zeros(num_priors), labels)
