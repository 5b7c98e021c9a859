"""DETR on synthetic batches: the loss falls in a few steps, an image without objects trains, and more objects
than queries is a documented truncation (every query matched, the rest of the objects unmatched)."""

import math

import pytest
import torch

from det_common.testing import synthetic_batch, train_steps
from tr_helpers import build_shapes_model, without_gt


@pytest.fixture(scope="module")
def batch():
    return synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)


def test_detr_loss_falls(batch):
    model = build_shapes_model("detr_r18_shapes")
    history = train_steps(model, batch, steps=6, lr=0.01)
    assert {"loss_cls", "loss_bbox", "loss_iou", "d0.loss_cls", "d1.loss_iou"} <= set(history[0])
    assert history[-1]["total"] < 0.9 * history[0]["total"], [h["total"] for h in history]
    model.eval()
    with torch.no_grad():
        detections = model.predict(batch)
    assert [len(d) for d in detections] == [20, 20]
    assert all(((d.boxes[:, 2:] <= torch.tensor([128.0, 96.0])) & (d.boxes >= 0).all(1, keepdim=True)).all()
               for d in detections)


def test_an_image_without_objects_trains(batch):
    model = build_shapes_model("detr_r18_shapes")
    history = train_steps(model, without_gt(batch, 1), steps=2, lr=0.01)
    assert all(math.isfinite(h["total"]) for h in history)
    model.train()
    all_empty = without_gt(without_gt(batch, 0), 1)
    losses = model.loss(all_empty)
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_iou"].item() == 0.0 and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()


def test_more_objects_than_queries_match_every_query(batch):
    model = build_shapes_model("detr_r18_shapes", num_queries=2)
    assert all(len(gt) == 3 for gt in batch.gt)
    history = train_steps(model, batch, steps=2, lr=0.01)
    assert all(math.isfinite(h["total"]) for h in history)
    model.train()
    head = model.bbox_head
    with torch.no_grad():
        hidden = model.forward_transformer(model.extract_feat(batch.images), batch)["hidden_states"]
        cls_scores, boxes = head(hidden)
        targets = head.get_targets(cls_scores[-1], boxes[-1], batch.gt, batch.metas)
    assert targets.num_pos == 4 and targets.num_neg == 0
