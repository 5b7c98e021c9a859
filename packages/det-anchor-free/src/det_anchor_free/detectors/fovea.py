"""FoveaBox (Kong et al. 2020): ResNet-FPN features and a FoveaHead."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class FOVEA(SingleStageDetector):
    """A SingleStageDetector under FoveaBox's config name (MMDetection's ``FOVEA``); all behaviour lives in its FoveaHead."""
