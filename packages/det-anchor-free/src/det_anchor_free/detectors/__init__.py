"""Detectors of the anchor-free family."""

from det_anchor_free.detectors.fcos import FCOS
from det_anchor_free.detectors.fovea import FOVEA
from det_anchor_free.detectors.vfnet import VFNet

__all__ = ["FCOS", "FOVEA", "VFNet"]
