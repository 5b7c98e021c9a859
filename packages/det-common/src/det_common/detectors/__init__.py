"""Whole detectors assembled from registered components."""

from det_common.detectors.base import BaseDetector
from det_common.detectors.single_stage import SingleStageDetector

__all__ = ["BaseDetector", "SingleStageDetector"]
