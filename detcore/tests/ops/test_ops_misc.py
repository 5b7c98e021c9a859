"""Corner pooling, sigmoid focal loss and CARAFE references against naive loops and torchvision."""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from detcore import ops
from detcore.ops import reference


@pytest.mark.parametrize("mode", ["top", "bottom", "left", "right"])
def test_corner_pool_matches_naive_loop(mode):
    x = torch.randn(2, 3, 5, 6)
    got = ops.corner_pool(x, mode)
    expected = torch.empty_like(x)
    height, width = x.shape[2:]
    for i in range(height):
        for j in range(width):
            if mode == "top":
                expected[..., i, j] = x[..., i:, j].amax(-1)
            elif mode == "bottom":
                expected[..., i, j] = x[..., : i + 1, j].amax(-1)
            elif mode == "left":
                expected[..., i, j] = x[..., i, j:].amax(-1)
            else:
                expected[..., i, j] = x[..., i, : j + 1].amax(-1)
    torch.testing.assert_close(got, expected)
    assert torch.autograd.gradcheck(
        lambda t: reference.corner_pool(t, mode), (torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True),)
    )


def test_corner_pool_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        ops.corner_pool(torch.zeros(1, 1, 2, 2), "up")
    with pytest.raises(ValueError, match="input"):
        ops.corner_pool(torch.zeros(1, 2, 2), "top")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_focal_loss_equals_torchvision(reduction, alpha):
    pred = torch.randn(7, 4, dtype=torch.float64)
    target = torch.tensor([0, 4, 3, 4, 1, 2, 0])  # 4 = background
    one_hot = F.one_hot(target, 5)[:, :4].to(pred.dtype)
    expected = torchvision.ops.sigmoid_focal_loss(pred, one_hot, alpha=alpha, gamma=1.5, reduction=reduction)
    got = ops.sigmoid_focal_loss(pred, target, gamma=1.5, alpha=alpha, reduction=reduction)
    torch.testing.assert_close(got, expected)


def test_focal_loss_weight_scales_rows_and_grad():
    pred = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    target = torch.tensor([0, 3, 2, 1, 3])
    weight = torch.rand(5, dtype=torch.float64)
    unweighted = ops.sigmoid_focal_loss(pred, target, reduction="none")
    torch.testing.assert_close(
        ops.sigmoid_focal_loss(pred, target, weight=weight, reduction="none"), unweighted * weight[:, None]
    )
    torch.testing.assert_close(
        ops.sigmoid_focal_loss(pred, target, weight=weight, reduction="sum"), (unweighted * weight[:, None]).sum()
    )
    assert torch.autograd.gradcheck(
        lambda p: reference.sigmoid_focal_loss(p, target, 2.0, 0.25, weight, "mean"), (pred,)
    )
    empty = ops.sigmoid_focal_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
    assert empty.item() == 0.0
    assert ops.sigmoid_focal_loss(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), reduction="none").shape == (
        0,
        3,
    )


def test_focal_loss_bad_inputs():
    with pytest.raises(ValueError, match="target"):
        ops.sigmoid_focal_loss(torch.zeros(2, 3), torch.tensor([0, 4]))
    with pytest.raises(TypeError, match="target"):
        ops.sigmoid_focal_loss(torch.zeros(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        ops.sigmoid_focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="weight"):
        ops.sigmoid_focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), weight=torch.ones(3))


def naive_carafe(features, masks, k, groups, scale):
    n, channels, height, width = features.shape
    out = torch.zeros(n, channels, height * scale, width * scale, dtype=features.dtype)
    r = k // 2
    for b in range(n):
        for c in range(channels):
            g = c // (channels // groups)
            for y in range(height * scale):
                for x in range(width * scale):
                    sy, sx = y // scale, x // scale
                    total = 0.0
                    for dy in range(k):
                        for dx in range(k):
                            yy, xx = sy + dy - r, sx + dx - r
                            if 0 <= yy < height and 0 <= xx < width:
                                total += features[b, c, yy, xx].item() * masks[b, g * k * k + dy * k + dx, y, x].item()
                    out[b, c, y, x] = total
    return out


@pytest.mark.parametrize("k, groups, scale", [(3, 1, 2), (5, 2, 2), (1, 1, 3)])
def test_carafe_matches_naive_loop(k, groups, scale):
    features = torch.randn(1, 4, 3, 4, dtype=torch.float64)
    masks = torch.randn(1, groups * k * k, 3 * scale, 4 * scale, dtype=torch.float64).softmax(1)
    got = ops.carafe(features, masks, k, groups, scale)
    torch.testing.assert_close(got, naive_carafe(features, masks, k, groups, scale))


def test_carafe_gradcheck_and_errors():
    features = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    masks = torch.rand(1, 9, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f, m: reference.carafe(f, m, 3, 1, 2), (features, masks))
    with pytest.raises(ValueError, match="masks"):
        ops.carafe(features, masks[:, :4], 3, 1, 2)
    with pytest.raises(ValueError, match="kernel_size"):
        ops.carafe(features, masks, 2, 1, 2)
    with pytest.raises(ValueError, match="group_size"):
        ops.carafe(torch.randn(1, 3, 3, 3), torch.rand(1, 18, 6, 6), 3, 2, 2)
