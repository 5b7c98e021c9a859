"""Merging of test-time-augmentation predictions (used by ``Detector.predict_tta``)."""

from __future__ import annotations

from typing import Sequence

from detcore.structures.instances import Instances


def merge_tta_predictions(
    per_view: Sequence[Sequence[Instances]], iou_threshold: float = 0.5, max_per_img: int = 100
) -> list[Instances]:
    """Concatenate each image's detections over views (all in original pixels), then class-wise NMS."""
    from detcore import ops

    merged = []
    for views in zip(*per_view):
        dets = Instances.cat(list(views))
        if len(dets):
            keep = ops.batched_nms(dets.boxes, dets.scores, dets.labels, iou_threshold)
            dets = dets[keep[:max_per_img]]
        merged.append(dets)
    return merged
