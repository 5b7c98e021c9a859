"""Layers of the anchor-based single-stage family."""

from det_single_stage.layers.integral import Integral

__all__ = ["Integral"]
