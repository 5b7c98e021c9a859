"""`pip install detcore det-keypoint det-ops-cuda`: CornerNet's corner pooling runs through `detcore.ops` on the
compiled kernel and gives the detections, losses and gradients of the reference op."""

from __future__ import annotations

import copy

import torch

import detcore.ops as ops
from det_common.parity import match_rate
from det_common.testing import synthetic_batch
from detcore.config import load_config
from detcore.registry import build


def cornernet_with_spread_embeddings():
    """The shapes CornerNet, untrained, its embeddings drawn wide enough that some corner pairs are kept."""
    torch.manual_seed(0)
    model = build("detectors", load_config("cornernet_hourglass_shapes")["model"])
    for head in (model.bbox_head.tl_emb[0], model.bbox_head.br_emb[0]):
        torch.nn.init.normal_(head[-1].conv.weight, std=0.01)
    model.bbox_head.test_cfg.update(distance_threshold=2.0, max_per_img=20)
    return model


def test_cornernet_gives_the_same_detections_losses_and_gradients_with_the_compiled_corner_pool(count_compiled_calls):
    ops.reload_backends()
    assert ops.op_backend("corner_pool", "cpu") == "det-ops-cuda"
    calls = count_compiled_calls("corner_pool_forward", "corner_pool_backward")
    model = cornernet_with_spread_embeddings()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    initial = copy.deepcopy(model.state_dict())

    def run():
        model.load_state_dict(initial)  # the same weights and BatchNorm statistics for both backends
        model.zero_grad()
        model.train()
        losses = model.loss(batch)
        sum(losses.values()).backward()
        grads = {name: p.grad.clone() for name, p in model.bbox_head.named_parameters() if p.grad is not None}
        model.eval()
        with torch.no_grad():
            detections = model.predict(batch)
        return {k: float(v.detach()) for k, v in losses.items()}, grads, detections

    compiled_losses, compiled_grads, compiled_dets = run()
    assert calls["corner_pool_forward"] > 0 and calls["corner_pool_backward"] > 0, calls
    with ops.use_backend("reference"):
        reference_losses, reference_grads, reference_dets = run()

    for name, value in reference_losses.items():
        assert abs(compiled_losses[name] - value) <= 1e-4 * abs(value), (name, compiled_losses[name], value)
    for name in ("tl_pool.0.direction1_conv.conv.weight", "br_pool.0.direction2_conv.conv.weight", "tl_heat.0.1.conv.weight"):
        torch.testing.assert_close(compiled_grads[name], reference_grads[name], rtol=1e-3, atol=1e-6)
    for ref, ours in zip(reference_dets, compiled_dets):
        assert len(ref) > 0 and match_rate(ref, ours) >= 0.99
