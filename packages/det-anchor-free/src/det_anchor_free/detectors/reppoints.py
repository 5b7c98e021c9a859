"""RepPoints detector (Yang et al. 2019): a backbone, an FPN and a RepPointsHead."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class RepPointsDetector(SingleStageDetector):
    """A SingleStageDetector under RepPoints' config name; all behaviour lives in its RepPointsHead."""
