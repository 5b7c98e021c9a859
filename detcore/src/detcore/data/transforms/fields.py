"""Helpers that apply one geometric kernel to the image and every box / mask / seg field."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes

from detcore.errors import DataError


def spatial_keys(results: dict[str, Any]) -> list[str]:
    """Keys of every spatial entry in ``results``: the image, then box, mask and seg fields."""
    keys = ["img"] if "img" in results else []
    for group in ("bbox_fields", "mask_fields", "seg_fields"):
        keys += [k for k in results.get(group, []) if k in results]
    return keys


def apply_spatial(
    results: dict[str, Any], kernel: Callable[[Any], Any], update_img_shape: bool = True
) -> dict[str, Any]:
    """Return a copy of ``results`` with ``kernel`` applied to the image and all spatial fields.

    ``img_shape`` becomes the new image size unless ``update_img_shape`` is False (padding keeps it).
    """
    check_no_keypoints(results)
    out = dict(results)
    for key in spatial_keys(results):
        out[key] = kernel(results[key])
    if "img" in out and update_img_shape:
        out["img_shape"] = tuple(out["img"].shape[-2:])
    return out


def check_no_keypoints(results: dict[str, Any]) -> None:
    """Geometric transforms do not move keypoints (a flip would also need the left/right pairs), so
    they refuse them rather than leave them misaligned with the pixels."""
    if "gt_keypoints" in results:
        raise DataError(
            f"image {results.get('img_id')}: results hold gt_keypoints, which the geometric transforms "
            "(resize, flip, crop, expand) do not move yet; drop those transforms from this pipeline"
        )


def image_hw(results: dict[str, Any]) -> tuple[int, int]:
    """(height, width) of the current image."""
    img = results["img"]
    return int(img.shape[-2]), int(img.shape[-1])


def make_boxes(data: Any, canvas_size: tuple[int, int]) -> tv_tensors.BoundingBoxes:
    """XYXY float32 boxes on a canvas of (H, W); accepts numpy arrays, lists or tensors."""
    tensor = torch.as_tensor(data, dtype=torch.float32).reshape(-1, 4)
    return tv_tensors.BoundingBoxes(tensor, format="XYXY", canvas_size=tuple(canvas_size))


def keep_instances(results: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """Keep only the selected ground-truth objects (boxes, labels, masks stay aligned)."""
    out = dict(results)
    for key in ("gt_bboxes", "gt_labels", "gt_masks", "gt_keypoints"):
        if key in out:
            value = out[key]
            selected = value[keep]
            if isinstance(value, tv_tensors.BoundingBoxes):
                selected = tv_tensors.wrap(selected, like=value)
            elif isinstance(value, tv_tensors.Mask):
                selected = tv_tensors.Mask(selected)
            out[key] = selected
    return out


def keep_ignored(results: dict[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """Keep only the selected ignore regions (boxes and their labels)."""
    out = dict(results)
    if "gt_bboxes_ignore" in out:
        out["gt_bboxes_ignore"] = tv_tensors.wrap(out["gt_bboxes_ignore"][keep], like=out["gt_bboxes_ignore"])
    if "gt_labels_ignore" in out:
        out["gt_labels_ignore"] = out["gt_labels_ignore"][keep]
    return out


def nonempty_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Boolean (N,) mask of boxes with positive width and height."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def boxes_from_masks(results: dict[str, Any]) -> dict[str, Any]:
    """Set each object's box to its mask's tight box and drop objects whose mask is empty.

    Used after crops: a clipped box of a non-rectangular object can be larger than what is left of it.
    """
    if "gt_masks" not in results or "gt_bboxes" not in results:
        return results
    masks = results["gt_masks"].bool()
    out = keep_instances(results, masks.flatten(1).any(dim=1))
    masks = out["gt_masks"].bool()
    if len(masks):
        boxes = masks_to_boxes(masks)
        boxes[:, 2:] += 1  # pixel indices -> pixel edges
    else:
        boxes = torch.zeros((0, 4))
    out["gt_bboxes"] = tv_tensors.wrap(boxes.to(torch.float32), like=out["gt_bboxes"])
    return out
