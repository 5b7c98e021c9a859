"""Detectors of the anchor-free family."""

from det_anchor_free.detectors.fcos import FCOS

__all__ = ["FCOS"]
