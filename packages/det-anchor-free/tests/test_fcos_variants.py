"""The FCOS rows of `001` beyond the two with MMDetection fixtures: DCN, R-101, multi-scale 2x, X-101 configs build
the layers and schedules their MMDetection namesakes have."""

from __future__ import annotations

import torch

from det_common.layers import ModulatedDeformConv2dPack
from detcore.config import load_config
from detcore.registry import build


def test_dcn_config_puts_dcnv2_in_c3_c5_and_the_last_tower_convs() -> None:
    cfg = load_config("fcos_center-normbbox-centeronreg-giou_r50_caffe_fpn_gn-head_dcn_1x_coco")
    model = build("detectors", cfg["model"])
    head = model.bbox_head
    for tower in (head.cls_convs, head.reg_convs):
        assert isinstance(tower[-1].conv, ModulatedDeformConv2dPack)
        assert not any(isinstance(m.conv, ModulatedDeformConv2dPack) for m in tower[:-1])
        assert float(tower[-1].conv.conv_offset.weight.abs().sum()) == 0.0  # starts as a plain convolution
    keys = set(model.state_dict())
    assert {"bbox_head.cls_convs.3.conv.conv_offset.weight", "bbox_head.reg_convs.3.conv.weight",
            "backbone.layer2.0.conv2.conv_offset.weight", "backbone.layer4.2.conv2.weight"} <= keys
    assert "backbone.layer1.0.conv2.conv_offset.weight" not in keys
    model.eval()
    with torch.no_grad():
        outs = head([torch.randn(1, 256, 8, 8), torch.randn(1, 256, 4, 4)] + [torch.randn(1, 256, 2, 2)] * 3)
    assert outs.cls_scores[0].shape == (1, 80, 8, 8)


def test_multiscale_and_deeper_rows() -> None:
    ms = load_config("fcos_r50_caffe_fpn_gn-head_mstrain_640-800_2x_coco")
    resize = next(t for t in ms["train_pipeline"] if t["type"] == "Resize")
    assert resize["scale"] == [[1333, 640], [1333, 800]] and resize["multiscale_mode"] == "value"
    assert ms["runner"]["max_epochs"] == 24 and ms["lr_config"]["steps"] == [16, 22]
    assert load_config("fcos_r101_caffe_fpn_gn-head_mstrain_640-800_2x_coco")["model"]["backbone"]["depth"] == 101
    assert load_config("fcos_r101_caffe_fpn_gn-head_1x_coco")["runner"]["max_epochs"] == 12
    x101 = load_config("fcos_x101_64x4d_fpn_gn-head_mstrain_640-800_2x_coco")
    assert x101["model"]["backbone"]["type"] == "ResNeXt" and x101["model"]["backbone"]["groups"] == 64
    assert x101["model"]["backbone"]["style"] == "pytorch"
    normalize = next(t for t in x101["test_pipeline"] if t["type"] == "Normalize")
    assert normalize["to_rgb"] is True
