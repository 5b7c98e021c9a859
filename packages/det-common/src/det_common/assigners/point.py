"""Point assignment of RepPoints (Yang et al. 2019, "RepPoints: Point Set Representation for Object Detection"):
each ground truth picks the ``pos_num`` points nearest its center on the pyramid level matching its size."""

from __future__ import annotations

import torch

from det_common.assigners.max_iou import labels_from_gt_inds
from detcore.interfaces import Assigner, AssignResult
from detcore.structures import Instances


class PointAssigner(Assigner):
    """A ground truth of width w and height h belongs to level ``int((log2(w / scale) + log2(h / scale)) / 2)``
    (clamped to the levels present); there it claims the ``pos_num`` points closest to its center, distances
    measured in units of its width and height. A point claimed by several ground truths takes the closest
    (the first on ties); every other point is negative.

    ``pred.priors``: (P, >= 3) points ``x, y, stride, ...`` (``MlvlPointGenerator(with_stride=True)``);
    the level of a point is log2 of its stride.
    """

    def __init__(self, scale: int = 4, pos_num: int = 3) -> None:
        if pos_num < 1:
            raise ValueError(f"PointAssigner: pos_num must be >= 1, got {pos_num}")
        self.scale = scale
        self.pos_num = pos_num

    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> AssignResult:
        points = pred.priors
        if points.dim() != 2 or points.shape[1] < 3:
            raise ValueError(f"PointAssigner: priors must be (P, >= 3) rows of x, y, stride; got {tuple(points.shape)}")
        num_points, num_gts = points.shape[0], len(gt)
        gt_inds = torch.zeros(num_points, dtype=torch.long, device=points.device)
        if num_points == 0 or num_gts == 0:
            return AssignResult(num_gts, gt_inds, points.new_zeros(num_points),
                                torch.full_like(gt_inds, -1))
        boxes = gt.boxes.to(points.dtype)
        levels = torch.log2(points[:, 2]).int()
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        sizes = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
        gt_levels = ((torch.log2(sizes[:, 0] / self.scale) + torch.log2(sizes[:, 1] / self.scale)) / 2).int()
        gt_levels = gt_levels.clamp(min=int(levels.min()), max=int(levels.max()))
        best_dist = points.new_full((num_points,), float("inf"))
        for j in range(num_gts):
            on_level = (levels == gt_levels[j]).nonzero().flatten()
            dist = ((points[on_level, :2] - centers[j]) / sizes[j]).norm(dim=1)
            nearest_dist, nearest = torch.topk(dist, min(self.pos_num, dist.numel()), largest=False)
            chosen = on_level[nearest]
            closer = nearest_dist < best_dist[chosen]
            gt_inds[chosen[closer]] = j + 1
            best_dist[chosen[closer]] = nearest_dist[closer]
        return AssignResult(num_gts, gt_inds, points.new_zeros(num_points), labels_from_gt_inds(gt_inds, gt.labels))
