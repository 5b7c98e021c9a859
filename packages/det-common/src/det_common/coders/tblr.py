"""Top-bottom-left-right box coder of FSAF (Zhu et al. 2019, "Feature Selective Anchor-Free Module for
Single-Shot Object Detection"): a box as its four side distances from a prior's center, in prior sizes."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from detcore.interfaces import BoxCoder


class TBLRBBoxCoder(BoxCoder):
    """Encodes a box as (top, bottom, left, right) distances from the center of a prior box (N, 4), the
    vertical ones divided by the prior's height and the horizontal ones by its width, then by ``normalizer``
    (a number or one per side). Decoding inverts it and clips to ``max_shape`` (h, w) when ``clip_border``."""

    def __init__(self, normalizer: float | Sequence[float] = 4.0, clip_border: bool = True) -> None:
        if not isinstance(normalizer, (int, float)) and len(normalizer) != 4:
            raise ValueError(f"TBLRBBoxCoder: normalizer must be a number or 4 numbers (t, b, l, r), got {normalizer}")
        self.normalizer = normalizer
        self.clip_border = clip_border

    def _normalizer(self, like: Tensor) -> Tensor | float:
        if isinstance(self.normalizer, (int, float)):
            return float(self.normalizer)
        return like.new_tensor(self.normalizer)

    @staticmethod
    def _check(priors: Tensor, other: Tensor, what: str) -> None:
        if priors.shape != other.shape or priors.shape[-1] != 4:
            raise ValueError(
                f"TBLRBBoxCoder: priors {tuple(priors.shape)} and {what} {tuple(other.shape)} must both be (..., 4)"
            )

    def encode(self, priors: Tensor, gt_boxes: Tensor) -> Tensor:
        """(top, bottom, left, right) (..., 4) of ``gt_boxes`` around the centers of ``priors``, in prior sizes."""
        self._check(priors, gt_boxes, "boxes")
        cx = (priors[..., 0] + priors[..., 2]) * 0.5
        cy = (priors[..., 1] + priors[..., 3]) * 0.5
        w = priors[..., 2] - priors[..., 0]
        h = priors[..., 3] - priors[..., 1]
        tblr = torch.stack(
            [(cy - gt_boxes[..., 1]) / h, (gt_boxes[..., 3] - cy) / h,
             (cx - gt_boxes[..., 0]) / w, (gt_boxes[..., 2] - cx) / w], dim=-1,
        )
        return tblr / self._normalizer(tblr)

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int] | None = None) -> Tensor:
        """Boxes (..., 4) from priors and (top, bottom, left, right) values; clipped to ``max_shape`` (h, w)."""
        self._check(priors, deltas, "values")
        tblr = deltas * self._normalizer(deltas)
        cx = (priors[..., 0] + priors[..., 2]) * 0.5
        cy = (priors[..., 1] + priors[..., 3]) * 0.5
        w = priors[..., 2] - priors[..., 0]
        h = priors[..., 3] - priors[..., 1]
        boxes = torch.stack(
            [cx - w * tblr[..., 2], cy - h * tblr[..., 0], cx + w * tblr[..., 3], cy + h * tblr[..., 1]], dim=-1
        )
        if self.clip_border and max_shape is not None:
            height, width = max_shape[:2]
            boxes = torch.stack(
                [boxes[..., 0].clamp(0, width), boxes[..., 1].clamp(0, height),
                 boxes[..., 2].clamp(0, width), boxes[..., 3].clamp(0, height)], dim=-1,
            )
        return boxes
