"""Box match costs: L1 distance of image-normalised boxes and (G)IoU overlap."""

from __future__ import annotations

from torch import Tensor
import torch

from det_common.bbox import bbox_overlaps
from det_common.bbox.transforms import bbox_xyxy_to_cxcywh
from det_transformer.match_costs.base import MatchCost, require
from detcore.structures import Instances


class BBoxL1Cost(MatchCost):
    """L1 distance between predicted and ground-truth boxes divided by the image size, as (cx, cy, w, h)
    (``box_format = "xywh"``, DETR) or as corners (``"xyxy"``, Sparse R-CNN)."""

    def __init__(self, box_format: str = "xyxy", weight: float = 1.0) -> None:
        super().__init__(weight)
        if box_format not in ("xyxy", "xywh"):
            raise ValueError(f"BBoxL1Cost: box_format must be 'xyxy' or 'xywh', got {box_format!r}")
        self.box_format = box_format

    def cost(self, pred: Instances, gt: Instances) -> Tensor:
        boxes, gt_boxes = require(pred, "boxes", self), gt.boxes
        if pred.image_size is None:
            raise ValueError("BBoxL1Cost needs pred.image_size (h, w) to normalise the boxes")
        height, width = pred.image_size
        factor = gt_boxes.new_tensor([width, height, width, height])
        if self.box_format == "xywh":
            boxes, gt_boxes = bbox_xyxy_to_cxcywh(boxes), bbox_xyxy_to_cxcywh(gt_boxes)
        return torch.cdist(boxes / factor, gt_boxes / factor, p=1)


class IoUCost(MatchCost):
    """Minus the IoU (``iou_mode = "iou"``) or generalized IoU (``"giou"``, Rezatofighi et al. 2019) of the boxes."""

    def __init__(self, iou_mode: str = "giou", weight: float = 1.0) -> None:
        super().__init__(weight)
        self.iou_mode = iou_mode

    def cost(self, pred: Instances, gt: Instances) -> Tensor:
        return -bbox_overlaps(require(pred, "boxes", self), gt.boxes, mode=self.iou_mode)
