import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import FrozenBatchNorm2d, deform_conv2d

from det_common.layers import (
    ConvModule, ConvWS2d, DeformConv2dPack, ModulatedDeformConv2dPack, Scale, bias_init_with_prob,
    build_activation_layer, build_conv_layer, build_norm_layer,
)


def test_norm_layers_names_and_requires_grad():
    name, bn = build_norm_layer({"type": "BN", "requires_grad": False}, 8, postfix=1)
    assert name == "bn1" and isinstance(bn, nn.BatchNorm2d)
    assert not any(p.requires_grad for p in bn.parameters())
    name, gn = build_norm_layer({"type": "GN", "num_groups": 4}, 8)
    assert name == "gn" and gn.num_groups == 4 and gn.num_channels == 8
    name, frozen = build_norm_layer({"type": "FrozenBN"}, 8)
    assert name == "bn" and isinstance(frozen, FrozenBatchNorm2d)
    assert build_norm_layer({"type": "SyncBN"}, 8)[0] == "bn"


def test_conv_module_names_and_forward():
    m = ConvModule(4, 8, 3, padding=1, norm_cfg={"type": "GN", "num_groups": 2}, act_cfg={"type": "LeakyReLU"})
    assert list(m.state_dict()) == ["conv.weight", "gn.weight", "gn.bias"]  # bias="auto": none with a norm
    x = torch.randn(2, 4, 5, 5)
    expected = F.leaky_relu(F.group_norm(F.conv2d(x, m.conv.weight, padding=1), 2, m.gn.weight, m.gn.bias))
    torch.testing.assert_close(m(x), expected)
    m = ConvModule(4, 8, 1, norm_cfg={"type": "BN"}).eval()
    assert "bn.running_mean" in m.state_dict() and m.conv.bias is None
    m = ConvModule(4, 8, 1, act_cfg=None)
    torch.testing.assert_close(m(x), F.conv2d(x, m.conv.weight, m.conv.bias))
    pre = ConvModule(4, 8, 1, norm_cfg={"type": "BN"}, order=("norm", "act", "conv"))
    assert pre.bn.num_features == 4


def test_conv_ws_standardizes_weights():
    conv = build_conv_layer({"type": "ConvWS"}, 3, 4, 3, padding=1)
    assert isinstance(conv, ConvWS2d)
    x = torch.randn(1, 3, 6, 6)
    w = conv.weight
    flat = w.flatten(1)
    std_w = (w - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-5)
    torch.testing.assert_close(conv(x), F.conv2d(x, std_w, conv.bias, padding=1))


def test_dcn_matches_torchvision_deform_conv():
    torch.manual_seed(0)
    x = torch.randn(1, 4, 7, 7)
    dcn = build_conv_layer({"type": "DCN", "deform_groups": 2}, 4, 6, 3, padding=1, bias=False)
    assert isinstance(dcn, DeformConv2dPack) and dcn.conv_offset.out_channels == 2 * 2 * 9
    # zero offsets at init: a plain convolution
    torch.testing.assert_close(dcn(x), F.conv2d(x, dcn.weight, padding=1), rtol=1e-4, atol=1e-5)
    nn.init.normal_(dcn.conv_offset.weight, std=0.1)
    offset = dcn.conv_offset(x)
    torch.testing.assert_close(dcn(x), deform_conv2d(x, offset, dcn.weight, padding=1), rtol=1e-4, atol=1e-5)

    dcn2 = build_conv_layer({"type": "DCNv2"}, 4, 6, 3, padding=1)
    assert isinstance(dcn2, ModulatedDeformConv2dPack) and dcn2.conv_offset.out_channels == 27
    nn.init.normal_(dcn2.conv_offset.weight, std=0.1)
    out = dcn2.conv_offset(x)
    offset = torch.cat([out[:, :9], out[:, 9:18]], 1)
    mask = out[:, 18:].sigmoid()
    expected = deform_conv2d(x, offset, dcn2.weight, dcn2.bias, padding=1, mask=mask)
    torch.testing.assert_close(dcn2(x), expected, rtol=1e-4, atol=1e-5)


def test_activation_scale_and_bias_prior():
    act = build_activation_layer({"type": "SiLU"}, inplace=False)
    x = torch.randn(5)
    torch.testing.assert_close(act(x), F.silu(x))
    assert isinstance(build_activation_layer({"type": "GELU"}, inplace=True), nn.GELU)
    assert abs(
        torch.sigmoid(torch.tensor(bias_init_with_prob(0.01), dtype=torch.float64)).item() - 0.01) < 1e-12
    s = Scale(2.0)
    torch.testing.assert_close(s(x), 2 * x)
    assert [n for n, _ in s.named_parameters()] == ["scale"]
