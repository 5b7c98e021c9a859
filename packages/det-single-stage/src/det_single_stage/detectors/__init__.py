"""Detectors of the anchor-based single-stage family."""

from det_single_stage.detectors.retinanet import RetinaNet

__all__ = ["RetinaNet"]
