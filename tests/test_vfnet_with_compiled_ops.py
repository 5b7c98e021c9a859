"""`pip install detcore det-anchor-free det-ops-cuda`: VarifocalNet's star-shaped deformable convolutions run through
`detcore.ops` on the compiled kernels and give the detections, losses and gradients of the reference op."""

from __future__ import annotations

import torch

import detcore.ops as ops
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


def test_vfnet_gives_the_same_detections_losses_and_gradients_with_the_compiled_ops(
    count_compiled_calls, same_results_with_reference_ops
):
    ops.reload_backends()
    assert ops.op_backend("deform_conv2d", "cpu") == "det-ops-cuda"
    calls = count_compiled_calls("deform_conv_forward", "deform_conv_backward")
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)
    same_results_with_reference_ops(
        vfnet_with_spread_scores(), batch,
        ("vfnet_reg_refine_dconv.weight", "vfnet_cls_dconv.weight", "vfnet_reg.weight", "cls_convs.0.conv.weight"),
    )
    assert calls["deform_conv_forward"] > 0 and calls["deform_conv_backward"] > 0, calls
