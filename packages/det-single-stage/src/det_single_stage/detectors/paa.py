"""PAA (Kim & Lee 2020): ResNet-FPN features and a PAAHead (probabilistic anchor assignment, IoU prediction)."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class PAA(SingleStageDetector):
    """A SingleStageDetector under PAA's config name; all behaviour lives in its PAAHead."""
