"""AutoAssign (Zhu et al. 2020, "AutoAssign: Differentiable Label Assignment for Dense Object Detection"):
ResNet-FPN features and an AutoAssignHead."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class AutoAssign(SingleStageDetector):
    """A SingleStageDetector under AutoAssign's config name; the weighting of positives and negatives lives in
    AutoAssignHead."""
