"""Box format conversions and geometric transforms (RoI packing, flip, rescale, point distances)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def bbox2roi(boxes_list: Sequence[Tensor]) -> Tensor:
    """Pack per-image boxes [(n_i, 4+)] into RoIs (K, 5): image index, x1, y1, x2, y2."""
    rois = []
    for img_id, boxes in enumerate(boxes_list):
        boxes = boxes[:, :4]
        index = boxes.new_full((boxes.shape[0], 1), float(img_id))
        rois.append(torch.cat([index, boxes], dim=1))
    if not rois:
        return torch.zeros((0, 5))
    return torch.cat(rois, dim=0)


def roi2bbox(rois: Tensor, num_images: int | None = None) -> list[Tensor]:
    """Split RoIs (K, 5) back into per-image boxes; ``num_images`` defaults to max index + 1."""
    if num_images is None:
        num_images = int(rois[:, 0].max().item()) + 1 if rois.numel() else 0
    return [rois[rois[:, 0] == i, 1:] for i in range(num_images)]


def bbox_flip(boxes: Tensor, img_shape: tuple[int, int], direction: str = "horizontal") -> Tensor:
    """Flip xyxy boxes (..., 4k) inside an image of (height, width): horizontal, vertical or diagonal."""
    if direction not in ("horizontal", "vertical", "diagonal"):
        raise ValueError(f"bbox_flip: direction must be horizontal, vertical or diagonal, got {direction!r}")
    if boxes.shape[-1] % 4 != 0:
        raise ValueError(f"bbox_flip: last dimension must be a multiple of 4, got {boxes.shape[-1]}")
    height, width = img_shape[0], img_shape[1]
    flipped = boxes.clone()
    if direction in ("horizontal", "diagonal"):
        flipped[..., 0::4] = width - boxes[..., 2::4]
        flipped[..., 2::4] = width - boxes[..., 0::4]
    if direction in ("vertical", "diagonal"):
        flipped[..., 1::4] = height - boxes[..., 3::4]
        flipped[..., 3::4] = height - boxes[..., 1::4]
    return flipped


def bbox_rescale(boxes: Tensor, scale_factor: float = 1.0) -> Tensor:
    """Scale the width and height of boxes (N, 4) or RoIs (N, 5) about their centers."""
    has_index = boxes.shape[-1] == 5
    coords = boxes[..., 1:] if has_index else boxes
    cx = (coords[..., 0] + coords[..., 2]) * 0.5
    cy = (coords[..., 1] + coords[..., 3]) * 0.5
    w = (coords[..., 2] - coords[..., 0]) * scale_factor
    h = (coords[..., 3] - coords[..., 1]) * scale_factor
    out = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
    if has_index:
        out = torch.cat([boxes[..., :1], out], dim=-1)
    return out


def scale_boxes(boxes: Tensor, scale_factor: Sequence[float]) -> Tensor:
    """Multiply xyxy boxes by (w_scale, h_scale); divide by it to map back to the original image."""
    factor = boxes.new_tensor([scale_factor[0], scale_factor[1], scale_factor[0], scale_factor[1]])
    return boxes * factor


def bbox_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def bbox_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1], dim=-1)


def distance2bbox(points: Tensor, distance: Tensor, max_shape: tuple[int, int] | None = None) -> Tensor:
    """Boxes from points (..., 2) and distances (..., 4) to left, top, right, bottom; clipped to (h, w)."""
    x1 = points[..., 0] - distance[..., 0]
    y1 = points[..., 1] - distance[..., 1]
    x2 = points[..., 0] + distance[..., 2]
    y2 = points[..., 1] + distance[..., 3]
    boxes = torch.stack([x1, y1, x2, y2], dim=-1)
    if max_shape is not None:
        height, width = max_shape[0], max_shape[1]
        boxes = torch.stack(
            [
                boxes[..., 0].clamp(0, width),
                boxes[..., 1].clamp(0, height),
                boxes[..., 2].clamp(0, width),
                boxes[..., 3].clamp(0, height),
            ],
            dim=-1,
        )
    return boxes


def bbox2distance(points: Tensor, boxes: Tensor, max_dis: float | None = None, eps: float = 0.1) -> Tensor:
    """Distances (..., 4) from points to the left, top, right, bottom sides; clamped to [0, max_dis - eps]."""
    left = points[..., 0] - boxes[..., 0]
    top = points[..., 1] - boxes[..., 1]
    right = boxes[..., 2] - points[..., 0]
    bottom = boxes[..., 3] - points[..., 1]
    distance = torch.stack([left, top, right, bottom], dim=-1)
    if max_dis is not None:
        distance = distance.clamp(min=0, max=max_dis - eps)
    return distance
