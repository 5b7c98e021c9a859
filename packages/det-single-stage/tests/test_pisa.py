"""PISA RetinaNet: ISR-P and CARL by hand, training on a synthetic batch, an image without ground truth."""

import torch
from ss_helpers import assert_training_reduces_loss, shapes_model, tiny_batch, without_ground_truth

from det_common.losses import FocalLoss, SmoothL1Loss
from det_common.losses.pisa import carl_loss, isr_p_weights
from detcore.registry import build


def test_isr_p_ranks_prime_samples_first_and_keeps_the_loss_sum():
    coder = build("bbox_coders", {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4})
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3 + [[0.0, 0.0, 10.0, 10.0]])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.0], [0.0] * 4])
    labels = torch.tensor([0, 0, 0, 1])  # one object of class 0 (three positives), one background
    cls_score = torch.zeros(4, 1)
    weights = isr_p_weights(cls_score, deltas, labels, torch.ones(4), torch.zeros(4, 4), priors,
                            torch.tensor([0, 0, 0, -1]), FocalLoss(), coder, k=2.0, bias=0.0, num_classes=1)
    # IoU ranks 0, 1, 2 of 3 -> (3/3)^2, (2/3)^2, (1/3)^2, rescaled to sum to 3 (equal per-sample losses)
    raw = torch.tensor([1.0, 4 / 9, 1 / 9])
    assert torch.allclose(weights[:3], raw * 3 / raw.sum(), atol=1e-5)
    assert weights[3] == 1.0


def test_carl_weights_follow_the_class_score():
    cls_score = torch.tensor([[2.0], [-2.0]], requires_grad=True)
    deltas, targets = torch.zeros(2, 4), torch.ones(2, 4)
    loss = carl_loss(cls_score, torch.tensor([0, 0]), deltas, targets, SmoothL1Loss(beta=0.11), avg_factor=2.0,
                     num_classes=1)
    w = 0.2 + 0.8 * torch.sigmoid(torch.tensor([2.0, -2.0]))
    w = w * 2 / w.sum()
    per_box = 4 * (1 - 0.055) / 2
    assert torch.allclose(loss, (w * per_box).sum())
    loss.backward()
    assert cls_score.grad is not None and cls_score.grad.abs().sum() > 0


def test_training_reduces_loss():
    history = assert_training_reduces_loss(shapes_model("pisa_retinanet_r18_fpn_shapes"), tiny_batch())
    assert {"loss_cls", "loss_bbox", "loss_carl"} <= set(history[0])


def test_no_ground_truth_gives_finite_losses():
    model = shapes_model("pisa_retinanet_r18_fpn_shapes").train()
    losses = model.loss(without_ground_truth(tiny_batch()))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_carl"].item() == 0.0
