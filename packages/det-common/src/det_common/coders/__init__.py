"""Box coders: delta (dx, dy, dw, dh) and point distances."""

from det_common.coders.delta_xywh import DeltaXYWHBBoxCoder, clip_boxes
from det_common.coders.distance_point import DistancePointBBoxCoder
from det_common.coders.tblr import TBLRBBoxCoder

__all__ = ["DeltaXYWHBBoxCoder", "DistancePointBBoxCoder", "TBLRBBoxCoder", "clip_boxes"]
