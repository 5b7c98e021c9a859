"""RetinaNet (Lin et al. 2017): ResNet-FPN features and a RetinaHead trained with focal loss."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class RetinaNet(SingleStageDetector):
    """A SingleStageDetector under RetinaNet's config name; all behaviour lives in its RetinaHead."""
