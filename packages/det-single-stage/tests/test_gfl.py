"""GFL: QFL / DFL / Integral by hand, training on a synthetic batch, an image without ground truth."""

import torch
import torch.nn.functional as F
from ss_helpers import assert_training_reduces_loss, shapes_model, tiny_batch, without_ground_truth

from det_single_stage.layers import Integral
from det_single_stage.losses.gfocal import DistributionFocalLoss, QualityFocalLoss


def test_quality_focal_loss_by_hand():
    pred = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    labels, scores = torch.tensor([1, 2]), torch.tensor([0.7, 0.0])  # second row: background
    p = pred.sigmoid()
    bce = F.binary_cross_entropy_with_logits
    row0 = bce(pred[0, 0], torch.tensor(0.0)) * p[0, 0] ** 2 + bce(pred[0, 1], torch.tensor(0.7)) * (0.7 - p[0, 1]) ** 2
    row1 = (bce(pred[1], torch.zeros(2), reduction="none") * p[1] ** 2).sum()
    loss = QualityFocalLoss(beta=2.0)(pred, (labels, scores), avg_factor=2.0)
    assert torch.allclose(loss, (row0 + row1) / 2, atol=1e-6)


def test_distribution_focal_loss_and_integral():
    logits = torch.zeros(1, 5)
    target = torch.tensor([1.25])
    expected = 0.75 * F.cross_entropy(logits, torch.tensor([1])) + 0.25 * F.cross_entropy(logits, torch.tensor([2]))
    assert torch.allclose(DistributionFocalLoss()(logits, target), expected)
    peaked = torch.full((1, 4 * 5), -30.0)
    peaked[0, [1, 5 + 2, 10 + 4, 15]] = 30.0  # one bin per side
    assert torch.allclose(Integral(reg_max=4)(peaked), torch.tensor([[1.0, 2.0, 4.0, 0.0]]), atol=1e-4)


def test_training_reduces_loss():
    """QFL's target is the IoU of each positive's predicted box: it rises as the boxes improve, so early on the
    total rises with it (QFL is checked by hand above). With QFL's weight at 0 the box losses have fixed targets
    (the ground truth): 8 steps on one batch bring GIoU + DFL down by more than a quarter."""
    history = assert_training_reduces_loss(shapes_model("gfl_r18_fpn_shapes", loss_weights={"loss_cls": 0.0}),
                                           tiny_batch(), steps=8, lr=0.01, factor=0.75)
    assert {"loss_cls", "loss_bbox", "loss_dfl"} <= set(history[0])
    assert history[-1]["loss_bbox"] < 0.7 * history[0]["loss_bbox"]
    assert history[-1]["loss_dfl"] < 0.8 * history[0]["loss_dfl"]


def test_no_ground_truth_gives_zero_box_losses():
    model = shapes_model("gfl_r18_fpn_shapes").train()
    losses = model.loss(without_ground_truth(tiny_batch()))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_dfl"].item() == 0.0
