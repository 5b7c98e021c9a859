"""ATSS: a few steps on a synthetic batch reduce the loss; an image without ground truth gives finite losses."""

import torch
from ss_helpers import assert_training_reduces_loss, shapes_model, tiny_batch, without_ground_truth


def test_training_reduces_loss():
    history = assert_training_reduces_loss(shapes_model("atss_r18_fpn_shapes"), tiny_batch())
    assert {"loss_cls", "loss_bbox", "loss_centerness"} <= set(history[0])


def test_no_ground_truth_gives_zero_box_losses():
    model = shapes_model("atss_r18_fpn_shapes").train()
    losses = model.loss(without_ground_truth(tiny_batch()))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    sum(losses.values()).backward()
