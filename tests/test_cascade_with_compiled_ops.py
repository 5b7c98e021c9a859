"""`pip install detcore det-cascade det-ops-cuda` gives a working Cascade R-CNN whose RoI and NMS ops are compiled."""

from __future__ import annotations

import math

import torch

import detcore.ops as ops
from detcore.config import load_config
from detcore.registry import build
from det_common.testing import synthetic_batch, train_steps


def test_cascade_rcnn_trains_and_predicts_with_the_compiled_ops(count_compiled_calls):
    ops.reload_backends()
    for op in ("roi_align", "nms", "batched_nms"):
        assert ops.op_backend(op, "cpu") == "det-ops-cuda", op

    # count the calls that reach the compiled kernels while the detector runs
    calls = count_compiled_calls("roi_align_forward", "batched_nms")
    torch.manual_seed(0)
    model = build("detectors", load_config("cascade_rcnn_r18_fpn_shapes")["model"])
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)
    history = train_steps(model, batch, steps=2, lr=0.005)
    assert all(math.isfinite(h["total"]) for h in history)
    assert {"s0.loss_cls", "s1.loss_bbox", "s2.loss_cls", "loss_rpn_cls"} <= set(history[0])
    model.eval()
    with torch.no_grad():
        detections = model.predict(batch)
    assert len(detections) == 2
    assert calls["roi_align_forward"] > 0 and calls["batched_nms"] > 0, calls
