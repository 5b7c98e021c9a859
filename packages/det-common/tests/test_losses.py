import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss
from torchvision.ops import sigmoid_focal_loss as tv_focal

from dc_helpers import random_boxes
from det_common.losses import (
    BalancedL1Loss, BoundedIoULoss, CIoULoss, CrossEntropyLoss, DIoULoss, FocalLoss, GIoULoss, IoULoss, L1Loss,
    SmoothL1Loss, weight_reduce_loss,
)


def test_weight_reduce_loss_semantics():
    loss = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    weight = torch.tensor([1.0, 0.0])
    assert weight_reduce_loss(loss, weight, "sum").item() == 3.0  # (N,) weight broadcast over the last dim
    assert weight_reduce_loss(loss, None, "mean").item() == 2.5
    assert weight_reduce_loss(loss, None, "mean", avg_factor=5).item() == pytest.approx(2.0)
    assert torch.equal(weight_reduce_loss(loss, None, "none", avg_factor=5), loss)
    with pytest.raises(ValueError):
        weight_reduce_loss(loss, None, "sum", avg_factor=5)
    assert weight_reduce_loss(torch.zeros(0), None, "mean").item() == 0.0


def test_smooth_l1_l1_and_balanced_l1():
    torch.manual_seed(0)
    pred, target = torch.randn(20, 4) * 2, torch.randn(20, 4)
    w = torch.rand(20, 4)
    got = SmoothL1Loss(beta=0.5, loss_weight=2.0)(pred, target, weight=w, avg_factor=7.0)
    expected = 2.0 * (F.smooth_l1_loss(pred, target, reduction="none", beta=0.5) * w).sum() / 7.0
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(L1Loss()(pred, target), F.l1_loss(pred, target))
    torch.testing.assert_close(SmoothL1Loss(beta=0.0)(pred, target), F.l1_loss(pred, target))
    # balanced L1 by its formula; inlier branch, outlier branch and continuity at beta
    bl1 = BalancedL1Loss(alpha=0.5, gamma=1.5, beta=1.0, reduction="none")
    b = math.exp(3.0) - 1
    x = torch.tensor([0.3, 2.0])
    expected = torch.tensor([0.5 / b * (b * 0.3 + 1) * math.log(b * 0.3 + 1) - 0.5 * 0.3, 1.5 * 2.0 + 1.5 / b - 0.5])
    torch.testing.assert_close(bl1(x, torch.zeros(2)), expected)
    near = bl1(torch.tensor([1.0 - 1e-6, 1.0]), torch.zeros(2))
    assert abs(near[0].item() - near[1].item()) < 1e-4


def test_cross_entropy_softmax_and_sigmoid():
    torch.manual_seed(0)
    logits = torch.randn(10, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, -100, 2, 3])
    ce = CrossEntropyLoss(class_weight=[1.0, 2.0, 1.0, 0.5, 1.0], avg_non_ignore=True)
    cw = torch.tensor([1.0, 2.0, 1.0, 0.5, 1.0])
    per = F.cross_entropy(logits, labels, weight=cw, reduction="none")
    torch.testing.assert_close(ce(logits, labels), per.sum() / 9)
    torch.testing.assert_close(CrossEntropyLoss()(logits, labels, avg_factor=4.0), per.new_tensor(
        F.cross_entropy(logits, labels, reduction="none").sum().item() / 4.0))
    # sigmoid: labels in [0, C]; C is background (all-zero target)
    sig_labels = torch.tensor([0, 5, 2, 5, 4, 1, 1, 3, 5, 0])
    onehot = F.one_hot(sig_labels, 6)[:, :5].float()
    expected = F.binary_cross_entropy_with_logits(logits, onehot)
    torch.testing.assert_close(CrossEntropyLoss(use_sigmoid=True)(logits, sig_labels), expected)
    w = torch.rand(10)
    expected_w = (F.binary_cross_entropy_with_logits(logits, onehot, reduction="none") * w[:, None]).sum() / 3.0
    torch.testing.assert_close(CrossEntropyLoss(use_sigmoid=True)(logits, sig_labels, weight=w, avg_factor=3.0),
                               expected_w)


def test_mask_cross_entropy():
    torch.manual_seed(0)
    pred = torch.randn(3, 4, 6, 6)
    target = (torch.rand(3, 6, 6) > 0.5).float()
    label = torch.tensor([2, 0, 3])
    got = CrossEntropyLoss(use_mask=True, loss_weight=2.0)(pred, target, label=label)
    expected = 2.0 * F.binary_cross_entropy_with_logits(pred[torch.arange(3), label], target)
    torch.testing.assert_close(got, expected)


def test_focal_loss_matches_torchvision():
    torch.manual_seed(0)
    logits = torch.randn(30, 4)
    labels = torch.randint(0, 5, (30,))  # 4 = background
    onehot = F.one_hot(labels, 5)[:, :4].float()
    expected = tv_focal(logits, onehot, alpha=0.25, gamma=2.0, reduction="sum") / 6.0
    torch.testing.assert_close(FocalLoss()(logits, labels, avg_factor=6.0), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(FocalLoss()(logits, onehot, avg_factor=6.0), expected, rtol=1e-5, atol=1e-6)
    w = torch.rand(30)
    got = FocalLoss(loss_weight=0.5, reduction="none")(logits, labels, weight=w)
    torch.testing.assert_close(got, 0.5 * tv_focal(logits, onehot, reduction="none") * w[:, None], rtol=1e-5, atol=1e-6)


def _aligned_boxes(seed: int):
    g = torch.Generator().manual_seed(seed)
    target = random_boxes(25, generator=g)
    pred = target + torch.randn(25, 4, generator=g) * 8
    pred[:, 2:] = torch.maximum(pred[:, 2:], pred[:, :2] + 1)
    return pred, target


def test_iou_losses_match_formula_and_torchvision():
    pred, target = _aligned_boxes(0)
    ious = box_iou(pred, target).diagonal().clamp(min=1e-6)
    torch.testing.assert_close(IoULoss()(pred, target), (-ious.log()).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(IoULoss(linear=True)(pred, target), (1 - ious).mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(IoULoss(mode="square")(pred, target), (1 - ious**2).mean(), rtol=1e-5, atol=1e-6)
    w = torch.rand(25, 4)
    torch.testing.assert_close(
        GIoULoss()(pred, target, weight=w, avg_factor=10.0),
        (generalized_box_iou_loss(pred, target, reduction="none") * w.mean(-1)).sum() / 10.0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(DIoULoss()(pred, target), distance_box_iou_loss(pred, target, reduction="mean"),
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(CIoULoss()(pred, target), complete_box_iou_loss(pred, target, reduction="mean"),
                               rtol=1e-5, atol=1e-6)
    # DIoU by its formula on one pair
    p, t = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    iou = 1 / 7
    expected = 1 - iou + (1 + 1) / (9 + 9)
    torch.testing.assert_close(DIoULoss()(p, t), torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_bounded_iou_loss_formula():
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    target = torch.tensor([[2.0, 0.0, 12.0, 20.0]])
    # dx = 2, dy = 5: center terms 1 - (10 - 4) / (10 + 4), 1 - (20 - 10) / (20 + 10); sizes 0, 1 - 10 / 20
    eps = 1e-3
    comb = torch.tensor([1 - 6 / (14 + eps), 1 - 10 / (30 + eps), 1 - min(10 / (10 + eps), 10 / (10 + eps)),
                         1 - min(20 / (10 + eps), 10 / (20 + eps))])
    beta = 0.2
    expected = torch.where(comb < beta, 0.5 * comb**2 / beta, comb - 0.5 * beta)
    got = BoundedIoULoss(beta=beta, reduction="none")(pred, target)
    torch.testing.assert_close(got, expected[None], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(BoundedIoULoss()(pred, target, weight=torch.tensor([2.0]), avg_factor=1.0),
                               2 * BoundedIoULoss(reduction="sum")(pred, target))
