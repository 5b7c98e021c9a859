"""ATSS (Zhang et al. 2020): ResNet-FPN features and an ATSSHead trained with adaptive training sample selection."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class ATSS(SingleStageDetector):
    """A SingleStageDetector under ATSS's config name; all behaviour lives in its ATSSHead."""
