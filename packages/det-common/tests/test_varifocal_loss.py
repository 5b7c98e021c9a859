"""VarifocalLoss (VarifocalNet, `002` eq. 2): positives weighted by their IoU target, negatives by alpha * p^gamma."""

from __future__ import annotations

import math

import pytest
import torch

from detcore.registry import build


def bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_positives_weigh_by_their_target_and_negatives_by_the_focal_term() -> None:
    loss = build("losses", {"type": "VarifocalLoss", "alpha": 0.75, "gamma": 2.0, "iou_weighted": True})
    pred = torch.tensor([[2.0, -1.0], [0.5, -3.0]])
    target = torch.tensor([[0.8, 0.0], [0.0, 0.3]])
    got = loss(pred, target, reduction_override="none")
    p = pred.sigmoid()
    expected = torch.tensor([
        [0.8 * bce(2.0, 0.8), 0.75 * float(p[0, 1]) ** 2 * bce(-1.0, 0.0)],
        [0.75 * float(p[1, 0]) ** 2 * bce(0.5, 0.0), 0.3 * bce(-3.0, 0.3)],
    ])
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(loss(pred, target, avg_factor=2.0), expected.sum() / 2.0)


def test_unweighted_positives_and_weights_and_loss_weight() -> None:
    loss = build("losses", {"type": "VarifocalLoss", "iou_weighted": False, "loss_weight": 2.0})
    pred, target = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.5, 0.0]])
    got = loss(pred, target, weight=torch.tensor([0.5]), reduction_override="sum")
    p = float(pred.sigmoid()[0, 1])
    torch.testing.assert_close(got, torch.tensor(2.0 * 0.5 * (bce(1.0, 0.5) + 0.75 * p ** 2 * bce(1.0, 0.0))))


def test_a_perfect_prediction_costs_nothing_and_bad_input_is_named() -> None:
    loss = build("losses", {"type": "VarifocalLoss"})
    assert float(loss(torch.tensor([[30.0, -30.0]]), torch.tensor([[1.0, 0.0]]))) < 1e-8
    with pytest.raises(ValueError, match="one shape"):
        loss(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="use_sigmoid"):
        build("losses", {"type": "VarifocalLoss", "use_sigmoid": False})
    assert loss.needs_sampling is False
