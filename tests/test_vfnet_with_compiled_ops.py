"""`pip install detcore det-anchor-free det-ops-cuda`: VarifocalNet's star-shaped deformable convolutions run through
`detcore.ops` on the compiled kernels and give the detections, losses and gradients of the reference op."""

from __future__ import annotations

import copy

import torch

import detcore.ops as ops
from det_common.parity import match_rate
from det_common.testing import synthetic_batch
from detcore.config import load_config
from detcore.registry import build


def vfnet_with_spread_scores():
    """The shapes VFNet, untrained, with a classifier drawn wide enough that its scores are distinct."""
    torch.manual_seed(0)
    model = build("detectors", load_config("vfnet_r18_fpn_shapes")["model"])
    torch.nn.init.normal_(model.bbox_head.vfnet_cls.weight, std=0.2)
    model.bbox_head.test_cfg.update(score_thr=0.0, max_per_img=20)  # the 20 best of every image
    return model


def test_vfnet_gives_the_same_detections_losses_and_gradients_with_the_compiled_ops(count_compiled_calls):
    ops.reload_backends()
    assert ops.op_backend("deform_conv2d", "cpu") == "det-ops-cuda"
    calls = count_compiled_calls("deform_conv_forward", "deform_conv_backward")
    model = vfnet_with_spread_scores()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)

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
    assert calls["deform_conv_forward"] > 0 and calls["deform_conv_backward"] > 0, calls
    with ops.use_backend("reference"):
        reference_losses, reference_grads, reference_dets = run()

    for name, value in reference_losses.items():
        assert abs(compiled_losses[name] - value) <= 1e-4 * abs(value), (name, compiled_losses[name], value)
    for name in ("vfnet_reg_refine_dconv.weight", "vfnet_cls_dconv.weight", "vfnet_reg.weight", "cls_convs.0.conv.weight"):
        torch.testing.assert_close(compiled_grads[name], reference_grads[name], rtol=1e-3, atol=1e-6)
    for ref, ours in zip(reference_dets, compiled_dets):
        assert len(ref) > 0 and match_rate(ref, ours) >= 0.99
