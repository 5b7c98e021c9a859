"""`pip install detcore det-keypoint det-ops-cuda`: CornerNet's corner pooling runs through `detcore.ops` on the
compiled kernel and gives the detections, losses and gradients of the reference op."""

from __future__ import annotations

import torch

import detcore.ops as ops
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


def test_cornernet_gives_the_same_detections_losses_and_gradients_with_the_compiled_corner_pool(
    count_compiled_calls, same_results_with_reference_ops
):
    ops.reload_backends()
    assert ops.op_backend("corner_pool", "cpu") == "det-ops-cuda"
    calls = count_compiled_calls("corner_pool_forward", "corner_pool_backward")
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    same_results_with_reference_ops(
        cornernet_with_spread_embeddings(), batch,
        ("tl_pool.0.direction1_conv.conv.weight", "br_pool.0.direction2_conv.conv.weight", "tl_heat.0.1.conv.weight"),
    )
    assert calls["corner_pool_forward"] > 0 and calls["corner_pool_backward"] > 0, calls
