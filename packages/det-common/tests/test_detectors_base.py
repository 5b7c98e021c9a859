"""Detector helpers: conv-BN folding and torchvision key renaming."""

from __future__ import annotations

import torch
from torch import nn

from det_common.layers import fuse_conv_bn
from det_common.detectors.torchvision_keys import RESNET_FPN_RULES, p6p7_rules, rename_state_dict
from det_common.layers import ConvModule


def test_fuse_conv_bn_keeps_outputs() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        ConvModule(3, 8, 3, padding=1, norm_cfg={"type": "BN"}),
        nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8)),
    )
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    assert fuse_conv_bn(model) == 2
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_fuse_conv_bn_skips_training_norms() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    assert fuse_conv_bn(model) == 0


class _NormOnTheInput(nn.Module):
    """Registers a conv and then a norm, but normalises its input, not the conv's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


def test_fuse_conv_bn_folds_only_where_the_order_is_known() -> None:
    """A module that does not declare ``norm_follows_conv`` keeps its norm; ResNet's blocks declare it and fold."""
    from det_common.backbones import ResNet

    odd = _NormOnTheInput().eval()
    assert fuse_conv_bn(odd) == 0 and isinstance(odd.norm, nn.BatchNorm2d)
    resnet = ResNet(depth=18, out_indices=(3,)).eval()
    x = torch.randn(1, 3, 64, 64)
    expected = resnet(x)
    assert fuse_conv_bn(resnet) == 20  # stem, 8 blocks x 2, 3 downsamples
    torch.testing.assert_close(resnet(x), expected, atol=1e-4, rtol=1e-4)


def test_torchvision_resnet_fpn_keys() -> None:
    t = torch.zeros(1)
    state = {
        "backbone.body.layer1.0.bn1.running_mean": t,
        "backbone.fpn.inner_blocks.0.0.weight": t,
        "backbone.fpn.layer_blocks.2.bias": t,
        "backbone.fpn.extra_blocks.p7.weight": t,
        "head.something": t,
    }
    renamed, unplaced = rename_state_dict(state, [*RESNET_FPN_RULES, *p6p7_rules(3)])
    assert set(renamed) == {"backbone.layer1.0.bn1.running_mean", "neck.lateral_convs.0.conv.weight",
                            "neck.fpn_convs.2.conv.bias", "neck.fpn_convs.4.conv.weight"}
    assert unplaced == ["head.something"]
