"""Each method's shapes model on synthetic batches: the loss falls in a few steps, an image without objects trains,
and more objects than queries is a documented truncation (every query matched, the other objects unmatched)."""

import math

import pytest
import torch

from det_common.testing import synthetic_batch, train_steps
from tr_helpers import build_shapes_model, without_gt

CONFIGS = ["detr_r18_shapes", "deformable_detr_refine_r18_shapes"]


@pytest.fixture(scope="module")
def batch():
    return synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)


@pytest.mark.parametrize("config", CONFIGS)
def test_loss_falls(config, batch):
    model = build_shapes_model(config)
    history = train_steps(model, batch, steps=6, lr=0.01)
    assert {"loss_cls", "loss_bbox", "loss_iou", "d0.loss_cls", "d1.loss_iou"} <= set(history[0])
    assert history[-1]["total"] < 0.9 * history[0]["total"], [h["total"] for h in history]
    model.eval()
    with torch.no_grad():
        detections = model.predict(batch)
    for d in detections:
        assert 0 < len(d) <= model.bbox_head.test_cfg["max_per_img"]
        assert (d.boxes >= 0).all() and (d.boxes[:, 2] <= 128).all() and (d.boxes[:, 3] <= 96).all()


@pytest.mark.parametrize("config", CONFIGS)
def test_an_image_without_objects_trains(config, batch):
    model = build_shapes_model(config)
    history = train_steps(model, without_gt(batch, 1), steps=2, lr=0.01)
    assert all(math.isfinite(h["total"]) for h in history)
    model.train()
    losses = model.loss(without_gt(without_gt(batch, 0), 1))
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_iou"].item() == 0.0 and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()


@pytest.mark.parametrize("config", CONFIGS)
def test_more_objects_than_queries_match_every_query(config, batch, monkeypatch):
    model = build_shapes_model(config, num_queries=2)
    assert all(len(gt) == 3 for gt in batch.gt)
    assigner = model.bbox_head.assigner
    results = []
    assign = assigner.assign
    monkeypatch.setattr(assigner, "assign", lambda pred, gt, ignored=None: results.append(assign(pred, gt)) or results[-1])
    history = train_steps(model, batch, steps=2, lr=0.01)
    assert all(math.isfinite(h["total"]) for h in history)
    assert results and all(sorted(r.gt_inds.tolist()) in ([1, 2], [1, 3], [2, 3]) for r in results)
