"""CornerNet (Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints") and CentripetalNet (Dong et
al., "CentripetalNet: Pursuing High-quality Keypoint Pairs for Object Detection"): an hourglass backbone
and a corner head, no neck."""

from __future__ import annotations

from typing import Any, Mapping

from det_common.detectors.single_stage import SingleStageDetector
from det_common.postprocess import batched_nms_with_cfg
from detcore.errors import ConfigError
from detcore.structures import Instances

#: how the flip test merges its views (CornerNet's "mstest": soft-NMS of both views' detections)
TTA_CFG = {"nms": {"type": "soft_nms", "iou_threshold": 0.5, "method": "gaussian"}, "max_per_img": 100}


class CornerNet(SingleStageDetector):
    """A single-stage detector whose head pairs corner keypoints (``CornerHead`` / ``CentripetalHead``) on
    every hourglass stack's output; the test pipeline pads the image around its centre, which the head undoes.

    Test-time augmentation (``detcore test --tta`` with a flip ``tta_pipeline``): every view's detections,
    mapped back to the original image, are concatenated per image and merged by ``tta_cfg["nms"]`` (soft-NMS
    as CornerNet's flip test), keeping the ``tta_cfg["max_per_img"]`` best.
    """

    def __init__(self, *args: Any, tta_cfg: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tta_cfg = {**TTA_CFG, **dict(tta_cfg or {})}
        unknown = set(self.tta_cfg) - set(TTA_CFG)
        if unknown:
            raise ConfigError(f"model.tta_cfg: unknown keys {sorted(unknown)}; it takes {sorted(TTA_CFG)}")

    def merge_tta_views(self, views: list[Instances]) -> Instances:
        """One image's detections over its views (in original pixels) -> the ``max_per_img`` best after
        ``tta_cfg``'s NMS (the kernel's ``predict_tta`` calls it per image)."""
        merged = Instances.cat(views)
        if len(merged) == 0:
            return merged
        dets, kept = batched_nms_with_cfg(merged.boxes, merged.scores, merged.labels, self.tta_cfg["nms"])
        max_per_img = int(self.tta_cfg["max_per_img"])
        if max_per_img > 0:
            dets, kept = dets[:max_per_img], kept[:max_per_img]
        return Instances(merged.image_size, boxes=dets[:, :4], scores=dets[:, 4], labels=merged.labels[kept])
