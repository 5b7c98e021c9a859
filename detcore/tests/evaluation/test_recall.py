"""Proposal recall (VOC ``recall``, COCO ``proposal_fast``) against hand-computed examples."""

from __future__ import annotations

import contextlib
import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from detcore.evaluation import CocoMetric, VOCMetric
from detcore.evaluation.recall import eval_recalls
from detcore.structures import ImageMeta, Instances

# image 1: gts A, B; proposals best first: p1 = A (IoU 1), p2 ~ B (IoU 100/150 = .667), p3 = half of A (IoU .5)
# image 2: gt C; one proposal shifted by half (IoU 50/150 = .333)
GT = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([[0, 0, 10, 10]], float)]
PROPOSALS = [np.array([[0, 0, 10, 10, 0.9], [20, 20, 30, 35, 0.8], [0, 0, 10, 5, 0.7]]),
             np.array([[5, 0, 15, 10, 0.5]])]


def test_recall_by_hand():
    recalls = eval_recalls(GT, PROPOSALS, proposal_nums=(1, 2, 3), iou_thrs=(0.5, 0.7))
    # N=1: A (1.0) only in image 1, C at .333 -> 1/3 at both; N>=2: B at .667 joins at .5 only
    np.testing.assert_allclose(recalls, [[1 / 3, 1 / 3], [2 / 3, 1 / 3], [2 / 3, 1 / 3]])
    # unsorted input with scores is sorted first
    shuffled = [p[::-1].copy() for p in PROPOSALS]
    np.testing.assert_allclose(eval_recalls(GT, shuffled, (1, 2, 3), (0.5, 0.7)), recalls)


def test_one_proposal_recalls_one_object():
    # q overlaps D (IoU 100/110) and E (110/120): matched one-to-one, only E counts
    recalls = eval_recalls([np.array([[0, 0, 10, 10], [0, 0, 10, 12]], float)], [np.array([[0, 0, 10, 11]], float)],
                           proposal_nums=(1,), iou_thrs=(0.5,))
    assert recalls[0, 0] == pytest.approx(0.5)


def _predictions(rows):
    return Instances(None, boxes=torch.tensor(rows[:, :4], dtype=torch.float32),
                     scores=torch.tensor(rows[:, 4], dtype=torch.float32),
                     labels=torch.zeros(len(rows), dtype=torch.int64))


def test_voc_recall_metric():
    class VOCLike:
        classes = ["thing"]
        records = [{"img_id": i, "ann": {"bboxes": g.astype(np.float32), "labels": np.zeros(len(g), np.int64),
                                         "bboxes_ignore": np.zeros((0, 4), np.float32),
                                         "labels_ignore": np.zeros(0, np.int64)}} for i, g in enumerate(GT)]

        def __len__(self):
            return 2

        def get_data_info(self, i):
            return self.records[i]

    metric = VOCMetric(metric="recall", proposal_nums=(1, 2), iou_thrs=[0.5, 0.7], dataset=VOCLike())
    metas = [ImageMeta((64, 64), (64, 64), (64, 64), image_id=i) for i in range(2)]
    metric.process(SimpleNamespace(metas=metas), [_predictions(p) for p in PROPOSALS])
    out = metric.compute()
    assert out["recall@1@0.5"] == pytest.approx(1 / 3) and out["recall@2@0.5"] == pytest.approx(2 / 3)
    assert out["recall@2@0.7"] == pytest.approx(1 / 3)
    assert out["AR@2"] == pytest.approx(0.5) and "mAP" not in out


def test_coco_proposal_fast():
    coco = COCO()
    coco.dataset = {
        "images": [{"id": 1, "width": 64, "height": 64}, {"id": 2, "width": 64, "height": 64}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [30, 30, 20, 20], "area": 400, "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    metric = CocoMetric(metric="proposal_fast", proposal_nums=(1, 2, 3),
                        dataset=SimpleNamespace(coco=coco, cat_ids=[1], classes=["thing"]))
    metas = [ImageMeta((64, 64), (64, 64), (64, 64), image_id=i) for i in (1, 2)]
    metric.process(SimpleNamespace(metas=metas), [_predictions(p) for p in PROPOSALS])
    out = metric.compute()
    # thresholds .50:.95: A (IoU 1) counts at all 10, B (.667) at 4 (.5-.65), C (.333) never; crowd left out
    assert out["AR@1"] == pytest.approx(10 / 3 / 10)
    assert out["AR@2"] == pytest.approx((10 + 4) / 3 / 10)
    assert out["AR@3"] == out["AR@2"]
