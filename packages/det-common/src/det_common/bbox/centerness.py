"""Centerness targets (FCOS, Tian et al. 2019; ATSS, Zhang et al. 2020): how central a prior lies in its box."""

from __future__ import annotations

import torch
from torch import Tensor


def centerness_from_distances(distances: Tensor) -> Tensor:
    """sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) of (P, 4) (left, top, right, bottom) distances.

    Meant for positives (every distance > 0); a zero maximum gives NaN, as in the papers' definition.
    """
    left_right = distances[:, [0, 2]]
    top_bottom = distances[:, [1, 3]]
    if distances.numel() == 0:
        return distances.new_zeros(0)
    ratio = (left_right.min(dim=-1).values / left_right.max(dim=-1).values) * (
        top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values
    )
    return torch.sqrt(ratio)


def anchor_centerness(anchors: Tensor, gt_boxes: Tensor) -> Tensor:
    """Centerness of each anchor's center (P, 4 xyxy) inside its matched ground-truth box (P, 4 xyxy), as ATSS
    weighs its box loss and supervises its centerness branch."""
    cx = (anchors[:, 0] + anchors[:, 2]) / 2
    cy = (anchors[:, 1] + anchors[:, 3]) / 2
    distances = torch.stack([cx - gt_boxes[:, 0], cy - gt_boxes[:, 1], gt_boxes[:, 2] - cx, gt_boxes[:, 3] - cy], -1)
    return centerness_from_distances(distances)
