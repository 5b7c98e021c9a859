"""COCO segmentations (polygons, RLE) to bitmaps with pycocotools."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils


def segmentation_to_rle(segm: Any, height: int, width: int) -> dict:
    """Compressed RLE of a polygon list, an uncompressed RLE (counts list) or a compressed RLE."""
    if isinstance(segm, list):
        rles = mask_utils.frPyObjects(segm, height, width)
        return mask_utils.merge(rles)
    if isinstance(segm, dict) and isinstance(segm.get("counts"), list):
        return mask_utils.frPyObjects(segm, height, width)
    if isinstance(segm, dict):
        counts = segm["counts"]
        return {"size": segm["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
    raise TypeError(f"unsupported segmentation of type {type(segm).__name__}")


def segmentation_to_mask(segm: Any, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 bitmap of one COCO segmentation."""
    return mask_utils.decode(segmentation_to_rle(segm, height, width)).astype(np.uint8)


def segmentations_to_masks(segms: Sequence[Any], height: int, width: int) -> np.ndarray:
    """(N, H, W) uint8 bitmaps of N COCO segmentations."""
    if not segms:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.stack([segmentation_to_mask(s, height, width) for s in segms])


def mask_to_box(mask: np.ndarray) -> list[float] | None:
    """Tight XYXY box of the non-zero pixels (pixel edges), or None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
