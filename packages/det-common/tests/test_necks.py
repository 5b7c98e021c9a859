import torch
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from det_common.necks import FPN, PAFPN


def _copy_tv_fpn(ours: FPN, tv: FeaturePyramidNetwork) -> None:
    """Copy torchvision FPN weights into ours (inner_blocks -> lateral_convs, layer_blocks -> fpn_convs)."""
    n = len(tv.inner_blocks)
    for i in range(n):
        ours.lateral_convs[i].conv.load_state_dict(tv.inner_blocks[i][0].state_dict())
        ours.fpn_convs[i].conv.load_state_dict(tv.layer_blocks[i][0].state_dict())
    if isinstance(tv.extra_blocks, LastLevelP6P7):
        ours.fpn_convs[n].conv.load_state_dict(tv.extra_blocks.p6.state_dict())
        ours.fpn_convs[n + 1].conv.load_state_dict(tv.extra_blocks.p7.state_dict())


def _inputs(channels, base=32):
    torch.manual_seed(0)
    return [torch.randn(1, c, base // 2**i, base // 2**i) for i, c in enumerate(channels)]


def _tv_outputs(tv, feats):
    return list(tv({str(i): f for i, f in enumerate(feats)}).values())


def test_fpn_maxpool_matches_torchvision():
    channels = [8, 16, 32, 64]
    feats = _inputs(channels)
    tv = FeaturePyramidNetwork(channels, 16, extra_blocks=LastLevelMaxPool())
    ours = FPN(channels, 16, num_outs=5)
    _copy_tv_fpn(ours, tv)
    for a, b in zip(ours(feats), _tv_outputs(tv, feats), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fpn_p6p7_on_input_and_on_output_match_torchvision():
    channels = [8, 16, 32, 64]
    feats = _inputs(channels, base=64)
    # LastLevelP6P7(C5 channels, out): P6 from C5, ReLU before P7 (torchvision RetinaNet v2)
    tv = FeaturePyramidNetwork(channels[1:], 16, extra_blocks=LastLevelP6P7(64, 16))
    ours = FPN(channels, 16, num_outs=5, start_level=1, add_extra_convs="on_input", relu_before_extra_convs=True)
    _copy_tv_fpn(ours, tv)
    for a, b in zip(ours(feats), _tv_outputs(tv, feats[1:]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # LastLevelP6P7(out, out): P6 from P5 (torchvision RetinaNet v1)
    tv = FeaturePyramidNetwork(channels[1:], 16, extra_blocks=LastLevelP6P7(16, 16))
    ours = FPN(channels, 16, num_outs=5, start_level=1, add_extra_convs="on_output", relu_before_extra_convs=True)
    _copy_tv_fpn(ours, tv)
    for a, b in zip(ours(feats), _tv_outputs(tv, feats[1:]), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_fpn_parameter_names_and_on_lateral():
    fpn = FPN([8, 16, 32, 64], 16, num_outs=5, start_level=1, add_extra_convs="on_lateral",
              norm_cfg={"type": "GN", "num_groups": 4})
    keys = set(fpn.state_dict())
    assert {"lateral_convs.0.conv.weight", "lateral_convs.0.gn.weight", "fpn_convs.3.conv.weight"} <= keys
    assert len(fpn.fpn_convs) == 5 and fpn.fpn_convs[3].conv.in_channels == 16
    feats = _inputs([8, 16, 32, 64], base=64)
    outs = fpn(feats)
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    laterals = fpn._top_down(feats)
    torch.testing.assert_close(outs[3], fpn.fpn_convs[3](laterals[-1]))


def test_pafpn_bottom_up_path():
    channels = [8, 16, 32]
    feats = _inputs(channels)
    neck = PAFPN(channels, 8, num_outs=4)
    assert len(neck.downsample_convs) == 2 and len(neck.pafpn_convs) == 2
    outs = neck(feats)
    assert [tuple(o.shape[-2:]) for o in outs] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    # recompute by hand from the FPN part
    lat = neck._top_down(feats)
    inter = [neck.fpn_convs[i](lat[i]) for i in range(3)]
    p2 = inter[1] + neck.downsample_convs[0](inter[0])
    p3 = inter[2] + neck.downsample_convs[1](p2)
    torch.testing.assert_close(outs[0], inter[0])
    torch.testing.assert_close(outs[1], neck.pafpn_convs[0](p2))
    torch.testing.assert_close(outs[2], neck.pafpn_convs[1](p3))
    torch.testing.assert_close(outs[3], torch.nn.functional.max_pool2d(outs[2], 1, stride=2))
