"""Merging of test-time-augmentation predictions (``Detector.merge_tta_views``'s default)."""

from __future__ import annotations

from typing import Sequence

from detcore.structures.instances import Instances


def merge_views(views: Sequence[Instances], iou_threshold: float = 0.5, max_per_img: int = 100) -> Instances:
    """One image's detections over its views (all in original pixels), concatenated, then class-wise NMS."""
    from detcore import ops

    dets = Instances.cat(list(views))
    if len(dets):
        keep = ops.batched_nms(dets.boxes, dets.scores, dets.labels, iou_threshold)
        dets = dets[keep[:max_per_img]]
    return dets

