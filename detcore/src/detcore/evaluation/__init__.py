"""Evaluation metrics: COCO (via pycocotools) and PASCAL VOC mAP."""

from detcore.evaluation.base import BaseMetric
from detcore.evaluation.coco_metric import CocoMetric
from detcore.evaluation.mean_ap import average_precision, eval_map
from detcore.evaluation.voc_metric import VOCMetric

__all__ = ["BaseMetric", "CocoMetric", "VOCMetric", "average_precision", "eval_map"]
