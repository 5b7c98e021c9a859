"""FCOS (Tian et al. 2019): ResNet-FPN features and an FCOSHead, no anchors."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class FCOS(SingleStageDetector):
    """A SingleStageDetector under FCOS's config name; all behaviour lives in its FCOSHead."""
