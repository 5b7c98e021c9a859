"""`pip install detcore det-transformer det-ops-cuda`: Deformable DETR's attention runs det-ops-cuda's compiled
multi-scale deformable attention, and gives the same detections as with detcore's reference op."""

from __future__ import annotations

import torch

import detcore.ops as ops
from detcore.config import load_config
from detcore.registry import build
from det_common.parity import match_rate
from det_common.testing import synthetic_batch


def test_deformable_detr_detections_are_the_same_with_the_compiled_op(monkeypatch):
    ops.reload_backends()
    assert ops.op_backend("multi_scale_deformable_attention", "cpu") == "det-ops-cuda"

    from det_ops_cuda import backend as compiled

    calls = {"msda_forward": 0}
    extension = compiled.extension()

    class Counting:
        def __getattr__(self, name):
            if name in calls:
                calls[name] += 1
            return getattr(extension, name)

    monkeypatch.setattr(compiled, "extension", lambda: Counting())
    torch.manual_seed(0)
    cfg = load_config("deformable_detr_refine_r18_shapes")["model"]
    model = build("detectors", cfg).eval()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)
    with torch.no_grad():
        with ops.use_backend("reference"):
            reference = model.predict(batch)
        assert calls["msda_forward"] == 0
        compiled_dets = model.predict(batch)
    assert calls["msda_forward"] == 6  # 3 encoder + 3 decoder layers, one call each for the batch
    for ref, ours in zip(reference, compiled_dets):
        assert len(ref) == len(ours) == 90  # 30 queries x 3 classes
        assert match_rate(ref, ours) == 1.0
