"""Point-to-sides distance coder of anchor-free heads (FCOS, GFL), MMDetection's ``DistancePointBBoxCoder``."""

from __future__ import annotations

from torch import Tensor

from det_common.bbox.transforms import bbox2distance, distance2bbox
from detcore.interfaces import BoxCoder


class DistancePointBBoxCoder(BoxCoder):
    """Encodes a box as the (left, top, right, bottom) distances from a point; decodes back,
    clipping to ``max_shape`` (h, w) when ``clip_border``."""

    def __init__(self, clip_border: bool = True) -> None:
        self.clip_border = clip_border

    def encode(self, priors: Tensor, gt_boxes: Tensor, max_dis: float | None = None, eps: float = 0.1) -> Tensor:
        """Distances (..., 4) from points ``priors`` (..., 2+) to the sides of ``gt_boxes`` (..., 4),
        clamped to [0, max_dis - eps] when ``max_dis`` is given."""
        if priors.shape[:-1] != gt_boxes.shape[:-1] or gt_boxes.shape[-1] != 4 or priors.shape[-1] < 2:
            raise ValueError(
                f"DistancePointBBoxCoder.encode: points {tuple(priors.shape)} and boxes {tuple(gt_boxes.shape)} "
                "must share their leading dimensions"
            )
        return bbox2distance(priors, gt_boxes, max_dis, eps)

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int] | None = None) -> Tensor:
        """Boxes (..., 4) from points (..., 2+) and distances (..., 4)."""
        if priors.shape[:-1] != deltas.shape[:-1] or deltas.shape[-1] != 4 or priors.shape[-1] < 2:
            raise ValueError(
                f"DistancePointBBoxCoder.decode: points {tuple(priors.shape)} and distances {tuple(deltas.shape)} "
                "must share their leading dimensions"
            )
        return distance2bbox(priors, deltas, max_shape if self.clip_border else None)
