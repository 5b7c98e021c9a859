import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

from dc_helpers import random_boxes
from det_common.coders import DeltaXYWHBBoxCoder, DistancePointBBoxCoder


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_delta_coder_matches_torchvision(weights):
    g = torch.Generator().manual_seed(0)
    priors, gt = random_boxes(50, generator=g), random_boxes(50, generator=g)
    stds = [1.0 / w for w in weights]
    ours = DeltaXYWHBBoxCoder(target_stds=stds, clip_border=False)
    tv = TVBoxCoder(weights)
    deltas = ours.encode(priors, gt)
    torch.testing.assert_close(deltas, tv.encode_single(gt, priors), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.decode(priors, deltas), gt, rtol=1e-4, atol=1e-4)
    # large dw, dh: both clamp at log(1000 / 16) from above; class-specific (N, 4k) deltas
    raw = torch.randn(50, 8, generator=g) * 3 * torch.tensor(weights).repeat(2)
    expected = tv.decode_single(raw, priors)
    with_below = ours.decode(priors, raw)
    tv_mode = DeltaXYWHBBoxCoder(target_stds=stds, clip_border=False, clamp_dwh_below=False).decode(priors, raw)
    torch.testing.assert_close(tv_mode, expected, rtol=1e-4, atol=1e-4)
    below = (raw.reshape(50, 2, 4)[..., 2:] / torch.tensor(weights[2:])) < -math.log(1000 / 16)
    if not below.any():
        torch.testing.assert_close(with_below, expected, rtol=1e-4, atol=1e-4)


def test_delta_coder_means_stds_clamps_and_clip():
    coder = DeltaXYWHBBoxCoder(target_means=(0.1, 0.0, 0.0, 0.0), target_stds=(0.1, 0.1, 0.2, 0.2))
    prior = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    gt = torch.tensor([[2.0, 4.0, 22.0, 24.0]])
    expected = torch.tensor([[((12 - 5) / 10 - 0.1) / 0.1, (14 - 10) / 20 / 0.1, math.log(2) / 0.2, 0.0]])
    torch.testing.assert_close(coder.encode(prior, gt), expected)
    torch.testing.assert_close(coder.decode(prior, expected), gt)
    torch.testing.assert_close(coder.decode(prior, expected, max_shape=(15, 18)), torch.tensor([[2.0, 4.0, 18.0, 15.0]]))
    # dw = -10 is clamped to log(16/1000): width 10 * 0.016
    tiny = DeltaXYWHBBoxCoder(clip_border=False).decode(prior, torch.tensor([[0.0, 0.0, -10.0, 0.0]]))
    torch.testing.assert_close(tiny[0, 2] - tiny[0, 0], torch.tensor(0.16))
    ctr = DeltaXYWHBBoxCoder(add_ctr_clamp=True, ctr_clamp=3, clip_border=False)
    out = ctr.decode(prior, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([[3.0, 0.0, 13.0, 20.0]]))
    batched = coder.decode(prior.expand(2, 3, 4), expected.expand(2, 3, 4))
    assert batched.shape == (2, 3, 4)


def test_distance_point_coder():
    coder = DistancePointBBoxCoder()
    points = torch.tensor([[10.0, 10.0], [30.0, 5.0]])
    boxes = torch.tensor([[0.0, 2.0, 20.0, 30.0], [25.0, 0.0, 50.0, 9.0]])
    dist = coder.encode(points, boxes)
    assert dist.tolist() == [[10.0, 8.0, 10.0, 20.0], [5.0, 5.0, 20.0, 4.0]]
    torch.testing.assert_close(coder.decode(points, dist), boxes)
    torch.testing.assert_close(coder.decode(points, dist, max_shape=(25, 40)), torch.tensor([[0.0, 2.0, 20.0, 25.0], [25.0, 0.0, 40.0, 9.0]]))
    torch.testing.assert_close(coder.encode(points, boxes, max_dis=10).max(), torch.tensor(9.9))


def test_delta_decode_empty_inputs():
    from det_common.coders import DeltaXYWHBBoxCoder

    coder = DeltaXYWHBBoxCoder()
    assert coder.decode(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)
    assert coder.decode(torch.zeros(0, 4), torch.zeros(0, 12)).shape == (0, 12)
