"""VarifocalNet (Zhang et al. 2021, `002`): ResNet-FPN features and a VFNetHead."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class VFNet(SingleStageDetector):
    """A SingleStageDetector under VFNet's config name; all behaviour lives in its VFNetHead."""
