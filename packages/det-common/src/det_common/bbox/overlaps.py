"""Pairwise / aligned IoU, IoF and GIoU between xyxy boxes (MMDetection's ``bbox_overlaps``)."""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ("iou", "iof", "giou")


def _area(boxes: Tensor) -> Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def bbox_overlaps(
    boxes1: Tensor, boxes2: Tensor, mode: str = "iou", is_aligned: bool = False, eps: float = 1e-6
) -> Tensor:
    """Overlaps of boxes1 (..., N, 4) with boxes2 (..., M, 4): (..., N, M), or (..., N) if ``is_aligned``.

    ``iof`` divides by the area of boxes1 (intersection over foreground); denominators are
    clamped to ``eps`` so degenerate boxes give 0 instead of NaN.
    """
    if mode not in MODES:
        raise ValueError(f"bbox_overlaps: mode must be one of {MODES}, got {mode!r}")
    if boxes1.shape[-1] != 4 or boxes2.shape[-1] != 4:
        raise ValueError(
            f"bbox_overlaps: boxes must have a last dimension of 4, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
        )
    if is_aligned:
        if boxes1.shape[:-1] != boxes2.shape[:-1]:
            raise ValueError(
                f"bbox_overlaps(is_aligned=True): shapes must match, got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}"
            )
        a, b = boxes1, boxes2
    else:
        a, b = boxes1[..., :, None, :], boxes2[..., None, :, :]
    area1 = _area(a)
    area2 = _area(b)
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    if mode == "iof":
        union = area1
    else:
        union = area1 + area2 - inter
    union = union.clamp(min=eps)
    ious = inter / union
    if mode != "giou":
        return ious
    enclose_lt = torch.minimum(a[..., :2], b[..., :2])
    enclose_rb = torch.maximum(a[..., 2:], b[..., 2:])
    enclose_wh = (enclose_rb - enclose_lt).clamp(min=0)
    enclose_area = (enclose_wh[..., 0] * enclose_wh[..., 1]).clamp(min=eps)
    return ious - (enclose_area - union) / enclose_area
