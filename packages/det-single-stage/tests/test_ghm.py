"""GHM: harmonized weights by hand, training on a synthetic batch, no positives at all."""

import torch
import torch.nn.functional as F
from ss_helpers import assert_training_reduces_loss, shapes_model, tiny_batch, without_ground_truth

from det_single_stage.losses.ghm import GHMC, GHMR


def test_ghmc_weighs_by_inverse_gradient_density():
    # three easy negatives (g ~ 0) and one hard positive (g ~ 1): each bin's examples share a weight total/count
    pred = torch.tensor([[-10.0], [-10.0], [-10.0], [-10.0]])
    labels = torch.tensor([1, 1, 1, 0])  # 1 = background for one class
    loss = GHMC(bins=10, momentum=0.0)(pred, labels, torch.ones(4))
    bce = F.binary_cross_entropy_with_logits(pred[:, 0], torch.tensor([0.0, 0.0, 0.0, 1.0]), reduction="none")
    weights = torch.tensor([4 / 3, 4 / 3, 4 / 3, 4.0]) / 2  # two non-empty bins
    assert torch.allclose(loss, (bce * weights).sum() / 4)


def test_ghmr_momentum_accumulates_and_no_positive_is_finite():
    ghmr = GHMR(mu=0.02, bins=10, momentum=0.7)
    pred, target = torch.zeros(2, 4), torch.full((2, 4), 0.5)
    ghmr(pred, target, torch.ones(2, 4))
    assert torch.allclose(ghmr.acc_sum[-1], torch.tensor(0.3 * 8))
    empty = ghmr(pred, target, torch.zeros(2, 4))
    assert torch.isfinite(empty) and empty.item() == 0.0


def test_training_reduces_loss():
    history = assert_training_reduces_loss(shapes_model("retinanet_ghm_r18_fpn_shapes"), tiny_batch(), lr=0.005)
    assert {"loss_cls", "loss_bbox"} <= set(history[0])


def test_no_positives_gives_finite_losses():
    model = shapes_model("retinanet_ghm_r18_fpn_shapes").train()
    losses = model.loss(without_ground_truth(tiny_batch()))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_bbox"].item() == 0.0
    sum(losses.values()).backward()
