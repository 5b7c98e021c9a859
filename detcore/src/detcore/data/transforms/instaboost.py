"""``InstaBoost``: instance-level jitter of objects inside their image, guided by a heat map of where each
object can move (Fang et al., "InstaBoost: Boosting Instance Segmentation via Probability Map Guided
Copy-Pasting", ICCV 2019), through the ``instaboostfast`` package (optional extra: ``pip install
'detcore[instaboost]'``). It edits the raw annotations, so it goes after ``LoadImageFromFile`` and before
``LoadAnnotations(with_bbox = true, with_mask = true)``, as in the seeds' InstaBoost configs."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torchvision import tv_tensors

from detcore.errors import DataError
from detcore.interfaces.data import Transform
from detcore.optional import require


def mask_to_polygons(binary_mask: np.ndarray, tolerance: float = 0) -> list[list[float]]:
    """COCO polygons (x, y flat lists) of the outlines of a binary mask, one per contour."""
    from skimage import measure

    polygons = []
    padded = np.pad(binary_mask, pad_width=1, mode="constant", constant_values=0)
    for contour in measure.find_contours(padded, 0.5):
        contour = contour - 1
        if not np.array_equal(contour[0], contour[-1]):
            contour = np.vstack([contour, contour[:1]])
        contour = measure.approximate_polygon(contour, tolerance)
        if len(contour) < 3:
            continue
        polygons.append([max(0.0, float(v)) for v in np.flip(contour, axis=1).ravel()])
    return polygons


def _repair(instaboost: Any) -> None:
    """instaboostfast 0.1.2 turns a mask's contours into one numpy array, which fails (numpy >= 1.24) when a
    moved object's mask has several contours of different lengths; use :func:`mask_to_polygons` there."""
    module = instaboost.affine_transform
    two_blobs = np.zeros((8, 12), np.uint8)
    two_blobs[1:3, 1:3] = 1
    two_blobs[1:6, 6:11] = 1
    try:
        module.binary_mask_to_polygon(two_blobs)
    except ValueError:
        module.binary_mask_to_polygon = mask_to_polygons


class InstaBoost(Transform):
    """With probability ``aug_ratio``, move / scale / rotate / flip each object (``action_candidate`` drawn
    with ``action_prob``; ``scale``, ``dx``, ``dy``, ``theta`` ranges) and fill the hole it leaves."""

    def __init__(
        self,
        action_candidate: Sequence[str] = ("normal", "horizontal", "skip"),
        action_prob: Sequence[float] = (1, 0, 0),
        scale: Sequence[float] = (0.8, 1.2),
        dx: float = 15,
        dy: float = 15,
        theta: Sequence[float] = (-1, 1),
        color_prob: float = 0.5,
        hflag: bool = False,
        aug_ratio: float = 0.5,
    ) -> None:
        self.instaboost = require("instaboostfast", "instaboost", "the InstaBoost transform")
        _repair(self.instaboost)
        self.cfg = self.instaboost.InstaBoostConfig(tuple(action_candidate), tuple(action_prob), tuple(scale),
                                                    dx, dy, tuple(theta), color_prob, hflag)
        self.aug_ratio = aug_ratio
        self.failures = 0  # images instaboostfast could not handle

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "gt_bboxes" in results or "ann_info" not in results or "img" not in results:
            raise DataError("InstaBoost goes after LoadImageFromFile and before LoadAnnotations (it edits the raw "
                            f"annotations of image {results.get('img_id')})")
        ann = results["ann_info"]
        if "masks" not in ann:
            raise DataError(f"InstaBoost needs instance masks; image {results.get('img_id')} has none in its annotations")
        if np.random.rand() >= self.aug_ratio or len(ann["bboxes"]) == 0:
            return results
        img = results["img"].as_subclass(torch.Tensor)
        anns = [{"category_id": int(label), "segmentation": mask, "bbox": [x1, y1, x2 - x1, y2 - y1]}
                for label, mask, (x1, y1, x2, y2) in zip(ann["labels"], ann["masks"], np.asarray(ann["bboxes"]).tolist())]
        try:
            new_anns, new_img = self.instaboost.get_new_data(anns, img.permute(1, 2, 0).numpy().astype(np.uint8),
                                                            self.cfg, background=None)
        except ValueError as exc:
            # instaboostfast 0.1.2 builds a ragged numpy array when a moved mask splits into several contours,
            # which numpy >= 1.24 refuses: that image is kept as it is
            self.failures += 1
            if self.failures == 1:
                warnings.warn(f"InstaBoost: instaboostfast failed on image {results.get('img_id')} ({exc}); such "
                              "images are left unaugmented", RuntimeWarning, stacklevel=2)
            return results
        kept = [a for a in new_anns if a["bbox"][2] >= 1 and a["bbox"][3] >= 1]
        out = dict(results)
        out["ann_info"] = {
            **ann,
            "bboxes": np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in kept)],
                               np.float32).reshape(-1, 4),
            "labels": np.array([a["category_id"] for a in kept], np.int64),
            "masks": [a["segmentation"] for a in kept],
        }
        pixels = torch.from_numpy(np.ascontiguousarray(new_img)).permute(2, 0, 1).contiguous()
        out["img"] = tv_tensors.Image(pixels.to(img.dtype))
        return out
