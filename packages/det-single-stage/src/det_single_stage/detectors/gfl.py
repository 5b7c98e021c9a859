"""GFL (Li et al. 2020): ResNet-FPN features and a GFLHead (quality focal loss, distribution focal loss)."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class GFL(SingleStageDetector):
    """A SingleStageDetector under GFL's config name; all behaviour lives in its GFLHead."""
