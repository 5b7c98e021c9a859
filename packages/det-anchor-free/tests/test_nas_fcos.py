"""NAS-FCOS: the searched neck's outputs and names, the searched head towers, the FCOS-head variant's config, and
training on a synthetic batch."""

from __future__ import annotations

import copy

import torch

from det_common.layers.merge_cells import resize_to
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build


def shapes_cfg() -> dict:
    return copy.deepcopy(load_config("nas_fcos_nashead_r18_fpn_shapes")["model"])


def test_merge_cell_resize_upsamples_and_pools() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert resize_to(x, (8, 8)).shape == (1, 1, 8, 8)
    pooled = resize_to(x, (2, 2))
    torch.testing.assert_close(pooled, torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    # 5 rows onto 2: a zero row added below (6 rows), then max-pooled in threes
    torch.testing.assert_close(resize_to(torch.ones(1, 1, 5, 4), (2, 2)), torch.ones(1, 1, 2, 2))


def test_neck_gives_p3_to_p7_at_the_input_sizes() -> None:
    torch.manual_seed(0)
    neck = build("necks", {"type": "NASFCOS_FPN", "in_channels": [8, 16, 32, 64], "out_channels": 16, "num_outs": 5,
                           "start_level": 1, "add_extra_convs": True, "norm_cfg": {"type": "BN"},
                           "conv_cfg": {"type": "DCNv2", "deform_groups": 2}}).eval()
    names = set(neck.state_dict())
    assert {"adapt_convs.2.conv.weight", "fpn.c22_1.input1_conv.conv.conv_offset.weight", "fpn.c61.out_conv.bn.weight",
            "extra_downsamples.1.conv.weight"} <= names
    assert not any(name.startswith("fpn.c32.input2_conv") for name in names)  # c32 merges feature 2 unconvolved
    inputs = [torch.randn(1, c, 64 // s, 96 // s) for c, s in zip([8, 16, 32, 64], [4, 8, 16, 32])]
    outs = neck(inputs)
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert all(o.shape[1] == 16 for o in outs)


def test_head_towers_are_the_searched_ones() -> None:
    head = build("dense_heads", shapes_cfg()["bbox_head"])
    kinds = [type(m.conv).__name__ for m in head.cls_convs]
    assert kinds == ["ModulatedDeformConv2dPack", "Conv2d", "ModulatedDeformConv2dPack", "Conv2d"]
    assert head.cls_convs[0].conv.conv_offset.out_channels == 2 * 3 * 9  # two offset groups, DCNv2
    assert head.cls_convs[3].conv.kernel_size == (1, 1) and head.cls_convs[1].conv.bias is None
    assert head.cls_convs[0].conv.bias is not None and head.cls_convs[0].norm_name == "gn"


def test_fcos_head_variant_uses_the_plain_tower() -> None:
    cfg = load_config("nas_fcos_fcoshead_r50_caffe_fpn_gn-head_4x4_1x_coco")["model"]
    assert cfg["neck"]["type"] == "NASFCOS_FPN" and cfg["bbox_head"]["type"] == "FCOSHead"
    head = build("dense_heads", {**cfg["bbox_head"], "in_channels": 64, "feat_channels": 64, "num_classes": 3})
    assert [m.conv.kernel_size for m in head.cls_convs] == [(3, 3)] * 4


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg())
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    history = train_steps(model, batch, steps=8, lr=0.01)
    assert set(history[0]) == {"loss_cls", "loss_bbox", "loss_centerness", "total"}
    assert sum(h["total"] for h in history[-2:]) < 0.8 * sum(h["total"] for h in history[:2])
