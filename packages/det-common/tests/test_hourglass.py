"""HourglassNet: every stack returns a stride-4 map of feat_channel channels; the one-stack network still holds
MMDetection's single intermediate block; parameter names are MMDetection's."""

import torch

from det_common.backbones.hourglass import HourglassNet


def test_small_hourglass_outputs_one_stride4_map_per_stack():
    net = HourglassNet(downsample_times=2, num_stacks=2, stage_channels=(16, 16, 24), stage_blocks=(1, 1, 1),
                       feat_channel=8).eval()
    with torch.no_grad():
        outs = net(torch.rand(1, 3, 70, 90))
    assert [tuple(o.shape) for o in outs] == [(1, 8, 18, 23)] * 2 and net.out_channels == (8, 8)
    names = set(net.state_dict())
    assert {"stem.0.conv.weight", "stem.1.0.downsample.0.weight", "hourglass_modules.0.low2.low2.0.conv1.weight",
            "hourglass_modules.1.low2.low3.0.downsample.1.running_mean", "inters.0.bn2.weight",
            "remap_convs.0.bn.weight", "out_convs.1.conv.weight"} <= names


def test_one_stack_hourglass():
    net = HourglassNet(downsample_times=1, num_stacks=1, stage_channels=(8, 8), stage_blocks=(1, 1), feat_channel=8)
    assert len(net(torch.rand(2, 3, 32, 32))) == 1 and len(net.inters) == 1 and len(net.remap_convs) == 0
