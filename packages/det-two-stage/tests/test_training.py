"""A few SGD steps on a tiny synthetic batch reduce Faster R-CNN's and the RPN's losses."""

from __future__ import annotations

import math

import torch

from detcore.config import load_config
from detcore.registry import build
from det_common.bbox import bbox_overlaps as box_iou
from det_common.testing import train_steps
from ts_helpers import synthetic_batch

EXPECTED_FASTER_RCNN_LOSSES = {"loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "acc"}


def test_faster_rcnn_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    model = build("detectors", load_config("faster_rcnn_r18_fpn_shapes")["model"])
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(128, 160), num_classes=3)
    history = train_steps(model, batch, steps=12, lr=0.01)
    assert set(history[0]) == EXPECTED_FASTER_RCNN_LOSSES | {"total"}
    assert all(math.isfinite(h["total"]) for h in history)
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    for name in ("loss_rpn_cls", "loss_cls"):
        assert history[-1][name] < history[0][name], name


def test_rpn_loss_decreases_and_proposals_cover_the_objects():
    torch.manual_seed(0)
    cfg = load_config("faster_rcnn_r18_fpn_shapes")["model"]
    rpn_cfg = {
        "type": "RPN",
        "backbone": cfg["backbone"],
        "neck": cfg["neck"],
        "rpn_head": cfg["rpn_head"],
        "train_cfg": {"rpn": cfg["train_cfg"]["rpn"]},
        "test_cfg": {"rpn": cfg["test_cfg"]["rpn"]},
    }
    model = build("detectors", rpn_cfg)
    batch = synthetic_batch(torch.Generator().manual_seed(1), num_images=2, size=(128, 160), num_classes=3)
    history = train_steps(model, batch, steps=15, lr=0.02)
    assert set(history[0]) == {"loss_rpn_cls", "loss_rpn_bbox", "total"}
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    model.eval()
    with torch.no_grad():
        proposals = model.predict(batch)
    for props, gt in zip(proposals, batch.gt):
        assert 0 < len(props) <= 300
        assert bool((props.labels == 0).all())
        assert bool((props.scores[:-1] >= props.scores[1:]).all()), "proposals come best first"
        best_iou = box_iou(gt.boxes, props.boxes).max(dim=1).values
        assert bool((best_iou >= 0.5).all()), best_iou


def test_mask_rcnn_losses_decrease_and_it_predicts_masks():
    torch.manual_seed(0)
    cfg = load_config("faster_rcnn_r18_fpn_shapes")["model"]
    cfg["type"] = "MaskRCNN"
    cfg["roi_head"]["mask_roi_extractor"] = {
        "type": "SingleRoIExtractor",
        "roi_layer": {"type": "RoIAlign", "output_size": 14, "sampling_ratio": 0, "aligned": True},
        "out_channels": 64,
        "featmap_strides": [4, 8, 16, 32],
    }
    cfg["roi_head"]["mask_head"] = {"type": "FCNMaskHead", "num_convs": 2, "in_channels": 64, "conv_out_channels": 64,
                                    "num_classes": 3}
    cfg["train_cfg"]["rcnn"]["mask_size"] = 28
    model = build("detectors", cfg)
    batch = synthetic_batch(torch.Generator().manual_seed(2), num_images=2, size=(128, 160), with_masks=True)
    history = train_steps(model, batch, steps=12, lr=0.01)
    assert set(history[0]) == EXPECTED_FASTER_RCNN_LOSSES | {"loss_mask", "total"}
    assert all(math.isfinite(h["total"]) for h in history)
    assert history[-1]["loss_mask"] < 0.8 * history[0]["loss_mask"]
    assert history[-1]["total"] < history[0]["total"]
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    for dets in results:
        assert dets.masks.shape == (len(dets), 128, 160) and dets.masks.dtype == torch.bool


def test_res2net_faster_rcnn_loss_decreases_on_a_tiny_batch():
    """The Res2Net rows' shapes config (half-width Res2Net-50) learns: a few steps lower its losses."""
    torch.manual_seed(0)
    model = build("detectors", load_config("faster_rcnn_r2_50_fpn_shapes")["model"])
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(128, 160), num_classes=3)
    history = train_steps(model, batch, steps=12, lr=0.005)  # 0.02 diverges without warmup
    assert all(math.isfinite(h["total"]) for h in history)
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    for name in ("loss_rpn_cls", "loss_cls"):
        assert history[-1][name] < history[0][name], name
