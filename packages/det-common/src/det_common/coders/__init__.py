"""Box coders: delta (dx, dy, dw, dh) and point distances."""

from det_common.coders.delta_xywh import DeltaXYWHBBoxCoder, clip_boxes
from det_common.coders.distance_point import DistancePointBBoxCoder

__all__ = ["DeltaXYWHBBoxCoder", "DistancePointBBoxCoder", "clip_boxes"]
