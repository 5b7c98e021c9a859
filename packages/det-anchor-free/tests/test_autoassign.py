"""AutoAssign: the center prior, the negative weights inside boxes, training, and empty ground truth."""

import copy

import torch

from det_common.layers.center_prior import CenterPrior
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Instances


def shapes_cfg() -> dict:
    return copy.deepcopy(load_config("autoassign_r18_fpn_shapes")["model"])


def test_center_prior_is_a_gaussian_in_strides() -> None:
    prior = CenterPrior(num_classes=2)
    points = torch.tensor([[16.0, 16.0], [24.0, 16.0], [16.0, 32.0], [100.0, 100.0]])
    strides = torch.tensor([8.0, 8.0, 16.0, 8.0])
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0]])
    inside = torch.tensor([[True], [True], [False], [False]])
    weights, mask = prior(points, strides, boxes, torch.tensor([1]), inside)
    # the center has prior 1, one stride away exp(-1/2); outside the box 0
    assert torch.allclose(weights[:, 0], torch.tensor([1.0, float(torch.exp(torch.tensor(-0.5))), 0.0, 0.0]))
    assert torch.equal(mask, inside)
    # a box holding no point takes its topk points of highest prior with force_topk
    forced = CenterPrior(num_classes=2, force_topk=True, topk=2)
    _, mask = forced(points, strides, boxes, torch.tensor([1]), torch.zeros(4, 1, dtype=torch.bool))
    assert mask[:, 0].tolist() == [True, True, False, False]


def test_negative_weights_spare_well_located_points() -> None:
    head = build("dense_heads", shapes_cfg()["bbox_head"])
    joint = torch.full((4, 3), 0.5)
    gt = Instances(boxes=torch.tensor([[0.0, 0.0, 32.0, 32.0]]), labels=torch.tensor([2]))
    inside = torch.tensor([[True], [True], [True], [False]])
    ious = torch.tensor([[0.9], [0.5], [0.0], [0.0]])
    # 1 / (1 - IoU) rescaled over the box's points: the best located point is no negative for its class
    loss = head.negative_loss(joint, ious, gt, inside)
    p = torch.full((4, 3), 0.5)
    p[0, 2], p[1, 2] = 0.0, 0.5 * (1 - (2 - 1 + 1e-12) / (10 - 1 + 1e-12))
    expected = (p**2 * torch.nn.functional.binary_cross_entropy(p, torch.zeros_like(p), reduction="none")).sum()
    assert torch.allclose(loss, expected * head.neg_loss_weight)


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg())
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(80, 96), num_classes=3)
    history = train_steps(model, batch, steps=8, lr=0.01)
    assert set(history[0]) == {"loss_pos", "loss_neg", "loss_center", "total"}
    assert sum(h["total"] for h in history[-2:]) < 0.8 * sum(h["total"] for h in history[:2])


def test_loss_without_ground_truth_is_finite() -> None:
    model = build("detectors", shapes_cfg()).train()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 64), num_classes=3)
    batch.gt = [Instances.empty(), Instances.empty()]
    losses = model.loss(batch)
    assert losses["loss_pos"].item() == 0.0 and losses["loss_center"].item() == 0.0
    assert torch.isfinite(losses["loss_neg"]) and losses["loss_neg"] > 0
    sum(losses.values()).backward()
    assert model.bbox_head.center_prior.mean.grad is not None
