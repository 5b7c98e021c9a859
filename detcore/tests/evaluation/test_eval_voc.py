"""VOC mAP against a hand-computed example (area and 11-point AP, difficult boxes ignored)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from detcore.errors import ConfigError, DataError
from detcore.evaluation import VOCMetric, average_precision
from detcore.structures import ImageMeta, Instances


class VOCLike:
    """Two images. Class 0: GTs g1 (A), g2 (A), g3 (B) and a difficult box in A; class 1: one GT in B."""

    classes = ["car", "cat", "dog"]

    def __init__(self) -> None:
        self.records = [
            {"img_id": "A", "ann": {
                "bboxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32),
                "labels": np.array([0, 0]),
                "bboxes_ignore": np.array([[40, 40, 50, 50]], np.float32),
                "labels_ignore": np.array([0]),
            }},
            {"img_id": "B", "ann": {
                "bboxes": np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32),
                "labels": np.array([0, 1]),
                "bboxes_ignore": np.zeros((0, 4), np.float32),
                "labels_ignore": np.zeros(0, np.int64),
            }},
        ]

    def __len__(self) -> int:
        return len(self.records)

    def get_data_info(self, i: int) -> dict:
        return self.records[i]


def detections(rows):
    boxes = torch.tensor([r[0] for r in rows], dtype=torch.float32)
    return Instances(None, boxes=boxes, scores=torch.tensor([r[1] for r in rows]), labels=torch.tensor([r[2] for r in rows]))


# Ranked class-0 detections: B .95 TP(g3); A .92 on the difficult box (ignored); A .90 TP(g1);
# A .80 duplicate of g1 (IoU .81) FP; A .60 nowhere FP.  With 3 GTs:
# recall 1/3, 2/3, 2/3, 2/3 and precision 1, 1, 2/3, 1/2  ->  area AP = 2/3, 11-point AP = 7/11.
# Class 1 has a GT and no detection (AP 0); class 2 has no GT (left out of the mean).
A_DETS = [([0, 0, 10, 10], 0.90, 0), ([1, 1, 10, 10], 0.80, 0), ([40, 40, 50, 50], 0.92, 0),
          ([60, 60, 70, 70], 0.60, 0), ([5, 5, 9, 9], 0.7, 2)]
B_DETS = [([0, 0, 10, 9], 0.95, 0)]


def run(mode: str, **kwargs) -> dict:
    metric = VOCMetric(eval_mode=mode, dataset=VOCLike(), **kwargs)
    metas = [ImageMeta((64, 64), (64, 64), (64, 64), image_id=i) for i in ("A", "B")]
    metric.process(SimpleNamespace(metas=metas), [detections(A_DETS), detections(B_DETS)])
    return metric.compute()


def test_area_mode_hand_computed():
    results = run("area", classwise=True)
    assert results["AP50_car"] == pytest.approx(2 / 3)
    assert results["AP50_cat"] == 0.0
    assert results["mAP"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert results["AP50"] == results["mAP"]


def test_11points_mode_hand_computed():
    results = run("11points", classwise=True)
    assert results["AP50_car"] == pytest.approx(7 / 11)
    assert results["mAP"] == pytest.approx(7 / 22)


def test_counting_the_difficult_detection_would_change_the_answer():
    # the same curve with the ignored detection as a false positive: 1/3 * 1 + 1/3 * 2/3
    recalls = np.array([1, 1, 2, 2, 2]) / 3
    precisions = np.array([1, 1 / 2, 2 / 3, 1 / 2, 2 / 5])
    assert average_precision(recalls, precisions, "area") == pytest.approx(1 / 3 + 2 / 9)
    assert run("area", classwise=True)["AP50_car"] == pytest.approx(2 / 3)


def test_several_thresholds_and_errors():
    results = run("area", iou_thrs=[0.5, 0.95])
    # at IoU .95 only the exact box [0,0,10,10] on g1 matches; [0,0,10,9] (IoU .9) does not
    assert results["AP95"] < results["AP50"]
    assert results["mAP"] == pytest.approx((results["AP50"] + results["AP95"]) / 2)
    with pytest.raises(ConfigError, match="eval_mode"):
        VOCMetric(eval_mode="101points")
    metric = VOCMetric(dataset=VOCLike())
    metric.process(SimpleNamespace(metas=[ImageMeta((1, 1), (1, 1), (1, 1), image_id="Z")]), [detections(B_DETS)])
    with pytest.raises(DataError, match="'Z'"):
        metric.compute()
