"""Box utilities: overlaps (IoU / IoF / GIoU), RoI packing, flips, format and distance conversions."""

from det_common.bbox.centerness import anchor_centerness, centerness_from_distances
from det_common.bbox.overlaps import bbox_overlaps
from det_common.bbox.transforms import (
    bbox2distance,
    bbox2roi,
    bbox_cxcywh_to_xyxy,
    bbox_flip,
    bbox_rescale,
    bbox_xyxy_to_cxcywh,
    distance2bbox,
    roi2bbox,
    scale_boxes,
)

__all__ = [
    "anchor_centerness", "bbox2distance", "bbox2roi", "bbox_cxcywh_to_xyxy", "bbox_flip", "bbox_overlaps", "bbox_rescale",
    "bbox_xyxy_to_cxcywh", "centerness_from_distances", "distance2bbox", "roi2bbox", "scale_boxes",
]
