"""Centerness targets and the shared conv tower."""

import torch
from torch import nn

from det_common.bbox import anchor_centerness, centerness_from_distances
from det_common.layers import conv_tower


def test_centerness_is_one_at_the_center_and_falls_off():
    gt = torch.tensor([[0.0, 0.0, 40.0, 20.0]] * 2)
    anchors = torch.tensor([[10.0, 0.0, 30.0, 20.0], [0.0, 0.0, 20.0, 20.0]])  # centers (20, 10) and (10, 10)
    ctr = anchor_centerness(anchors, gt)
    assert torch.allclose(ctr, torch.tensor([1.0, (10 / 30) ** 0.5]))
    assert centerness_from_distances(torch.zeros(0, 4)).shape == (0,)


def test_conv_tower_with_group_norm_and_dcn_last():
    tower = conv_tower(8, 16, 3, norm_cfg={"type": "GN", "num_groups": 4, "requires_grad": True})
    assert len(tower) == 3 and tower[0].conv.in_channels == 8 and tower[0].conv.bias is None
    assert isinstance(tower[1].gn, nn.GroupNorm)
    dcn = conv_tower(8, 16, 2, dcn_on_last_conv=True)
    assert type(dcn[1].conv).__name__ == "ModulatedDeformConv2dPack"
    x = torch.randn(1, 8, 10, 12)
    for conv in dcn:
        x = conv(x)
    assert x.shape == (1, 16, 10, 12)
