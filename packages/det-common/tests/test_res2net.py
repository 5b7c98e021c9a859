"""Res2Net: MMDetection's layout and the Res2Net paper's block (hierarchical 3x3 convs over channel groups)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from det_common.backbones import Bottle2neck, Res2Net
from det_common.layers.fusion import fuse_conv_bn


def randomize_norms(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.weight.data = torch.rand(n, generator=generator) + 0.5
            module.bias.data = torch.randn(n, generator=generator) * 0.1
            module.running_mean = torch.randn(n, generator=generator) * 0.1
            module.running_var = torch.rand(n, generator=generator) + 0.5


def test_res2net50_layout_and_outputs():
    model = Res2Net(depth=50).eval()
    keys = set(model.state_dict())
    # deep stem, avg-pool shortcuts (an identity slot before the stride-1 projection of layer1), 3 convs of 26 ch
    assert {"stem.0.weight", "stem.6.weight", "layer1.0.downsample.1.weight", "layer1.0.downsample.2.running_var",
            "layer2.0.downsample.1.weight", "layer1.0.convs.2.weight", "layer1.0.bns.2.running_mean"} <= keys
    assert not any(".conv2." in k or ".bn2." in k for k in keys)
    assert model.layer1[0].convs[0].weight.shape == (26, 26, 3, 3) and model.layer4[0].conv1.out_channels == 208 * 4
    assert isinstance(model.layer2[0].downsample[0], nn.AvgPool2d) and model.layer2[0].stage_entry
    assert not model.layer2[1].stage_entry
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape[1:]) for o in outs] == [(256, 16, 24), (512, 8, 12), (1024, 4, 6), (2048, 2, 3)]


@pytest.mark.parametrize("stage_entry, stride", [(True, 2), (True, 1), (False, 1)])
def test_bottle2neck_middle_chains_groups_except_in_a_stages_first_block(stage_entry, stride):
    block = Bottle2neck(64, 16, stride=stride, scales=4, base_width=26, base_channels=16, stage_entry=stage_entry,
                        downsample=nn.Conv2d(64, 64, 1, stride=stride))
    randomize_norms(block, torch.Generator().manual_seed(0))
    block.eval()
    x = torch.randn(2, 104, 8, 8)
    s = torch.split(x, 26, dim=1)
    y = []
    for i in range(3):
        inp = s[i] if i == 0 or stage_entry else y[-1] + s[i]
        y.append(F.relu(block.bns[i](block.convs[i](inp))))
    last = F.avg_pool2d(s[3], 3, stride, 1) if stage_entry and stride > 1 else s[3]
    with torch.no_grad():
        torch.testing.assert_close(block.middle(x), torch.cat([*y, last], 1))


def test_res2net_is_resnet_d_style_only():
    with pytest.raises(ValueError, match="deep_stem must be True"):
        Res2Net(depth=50, deep_stem=False)
    with pytest.raises(ValueError, match="scales must be >= 2"):
        Res2Net(depth=50, scales=1)


def test_conv_bn_folding_keeps_res2net_outputs():
    torch.manual_seed(0)
    model = Res2Net(depth=50, frozen_stages=-1)
    randomize_norms(model, torch.Generator().manual_seed(1))
    model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert fuse_conv_bn(model) > 0
        after = model(x)
    for a, b in zip(before, after):  # float rounding only: within 1e-4 of each output's scale
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()
