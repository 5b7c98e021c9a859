"""Parameter names: MMDetection v2's Faster R-CNN / RPN checkpoint layout, and torchvision conversion."""

from __future__ import annotations

import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from det_two_stage.converters.torchvision import convert_fasterrcnn_resnet50_fpn
from ts_helpers import build_model

RESNET50_BLOCKS = (3, 4, 6, 3)


def mmdet_resnet50_fpn_keys() -> dict[str, tuple[int, ...]]:
    """MMDetection v2's ResNet-50 (pytorch style) + FPN parameter names and shapes."""
    keys: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, channels: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            keys[f"{prefix}.{name}"] = (channels,)
        keys[f"{prefix}.num_batches_tracked"] = ()

    keys["backbone.conv1.weight"] = (64, 3, 7, 7)
    bn("backbone.bn1", 64)
    inplanes = 64
    for stage, blocks in enumerate(RESNET50_BLOCKS, start=1):
        planes = 64 * 2 ** (stage - 1)
        for block in range(blocks):
            prefix = f"backbone.layer{stage}.{block}"
            keys[f"{prefix}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{prefix}.bn1", planes)
            keys[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{prefix}.bn2", planes)
            keys[f"{prefix}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{prefix}.bn3", planes * 4)
            if block == 0:
                keys[f"{prefix}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{prefix}.downsample.1", planes * 4)
            inplanes = planes * 4
    for level, channels in enumerate((256, 512, 1024, 2048)):
        keys[f"neck.lateral_convs.{level}.conv.weight"] = (256, channels, 1, 1)
        keys[f"neck.lateral_convs.{level}.conv.bias"] = (256,)
        keys[f"neck.fpn_convs.{level}.conv.weight"] = (256, 256, 3, 3)
        keys[f"neck.fpn_convs.{level}.conv.bias"] = (256,)
    return keys


RPN_HEAD_KEYS = {
    "rpn_head.rpn_conv.weight": (256, 256, 3, 3),
    "rpn_head.rpn_conv.bias": (256,),
    "rpn_head.rpn_cls.weight": (3, 256, 1, 1),
    "rpn_head.rpn_cls.bias": (3,),
    "rpn_head.rpn_reg.weight": (12, 256, 1, 1),
    "rpn_head.rpn_reg.bias": (12,),
}
BBOX_HEAD_KEYS = {
    "roi_head.bbox_head.shared_fcs.0.weight": (1024, 256 * 7 * 7),
    "roi_head.bbox_head.shared_fcs.0.bias": (1024,),
    "roi_head.bbox_head.shared_fcs.1.weight": (1024, 1024),
    "roi_head.bbox_head.shared_fcs.1.bias": (1024,),
    "roi_head.bbox_head.fc_cls.weight": (81, 1024),
    "roi_head.bbox_head.fc_cls.bias": (81,),
    "roi_head.bbox_head.fc_reg.weight": (320, 1024),
    "roi_head.bbox_head.fc_reg.bias": (320,),
}


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def test_faster_rcnn_state_dict_is_mmdetection_v2_layout():
    model = build_model("faster_rcnn_r50_fpn")
    expected = {**mmdet_resnet50_fpn_keys(), **RPN_HEAD_KEYS, **BBOX_HEAD_KEYS}
    assert _shapes(model.state_dict()) == expected


def test_mmdetection_checkpoint_loads_without_missing_or_unexpected_keys():
    model = build_model("faster_rcnn_r50_fpn")
    generator = torch.Generator().manual_seed(0)
    layout = {**mmdet_resnet50_fpn_keys(), **RPN_HEAD_KEYS, **BBOX_HEAD_KEYS}
    checkpoint = {k: torch.randn(shape, generator=generator) if shape else torch.tensor(7) for k, shape in layout.items()}
    result = model.load_state_dict(checkpoint, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(model.roi_head.bbox_head.fc_cls.weight, checkpoint["roi_head.bbox_head.fc_cls.weight"])
    torch.testing.assert_close(model.rpn_head.rpn_reg.bias, checkpoint["rpn_head.rpn_reg.bias"])


def test_rpn_state_dict_is_mmdetection_v2_layout():
    model = build_model("rpn_r50_fpn")
    assert _shapes(model.state_dict()) == {**mmdet_resnet50_fpn_keys(), **RPN_HEAD_KEYS}


def test_torchvision_conversion_reorders_background_and_fills_frozen_bn_counters():
    torch.manual_seed(0)
    tv_state = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()
    # torchvision's pretrained models use FrozenBatchNorm2d, whose state has no num_batches_tracked
    tv_state = {k: v for k, v in tv_state.items() if not k.endswith("num_batches_tracked")}
    converted, unplaced = convert_fasterrcnn_resnet50_fpn(tv_state)
    assert unplaced == []
    layout = {**mmdet_resnet50_fpn_keys(), **RPN_HEAD_KEYS, **BBOX_HEAD_KEYS}
    layout["roi_head.bbox_head.fc_cls.weight"] = (91, 1024)
    layout["roi_head.bbox_head.fc_cls.bias"] = (91,)
    layout["roi_head.bbox_head.fc_reg.weight"] = (360, 1024)
    layout["roi_head.bbox_head.fc_reg.bias"] = (360,)
    assert _shapes(converted) == layout
    cls_bias = tv_state["roi_heads.box_predictor.cls_score.bias"]
    torch.testing.assert_close(converted["roi_head.bbox_head.fc_cls.bias"], torch.cat([cls_bias[1:], cls_bias[:1]]))
    reg_weight = tv_state["roi_heads.box_predictor.bbox_pred.weight"]
    torch.testing.assert_close(converted["roi_head.bbox_head.fc_reg.weight"], reg_weight[4:])
    torch.testing.assert_close(converted["rpn_head.rpn_conv.weight"], tv_state["rpn.head.conv.0.0.weight"])


def test_torchvision_conversion_accepts_old_names_and_reports_unplaced_keys():
    weight = torch.randn(256, 256, 3, 3)
    converted, unplaced = convert_fasterrcnn_resnet50_fpn(
        {
            "rpn.head.conv.weight": weight,
            "backbone.fpn.inner_blocks.2.weight": torch.zeros(256, 1024, 1, 1),
            "roi_heads.mask_head.mask_fcn1.weight": torch.zeros(1),
        }
    )
    assert converted.keys() == {"rpn_head.rpn_conv.weight", "neck.lateral_convs.2.conv.weight"}
    assert converted["rpn_head.rpn_conv.weight"] is weight
    assert unplaced == ["roi_heads.mask_head.mask_fcn1.weight"]


def test_mask_rcnn_state_dict_is_mmdetection_v2_layout():
    model = build_model("mask_rcnn_r50_fpn")
    mask_keys = {f"roi_head.mask_head.convs.{i}.conv.{p}": (256, 256, 3, 3) if p == "weight" else (256,)
                 for i in range(4) for p in ("weight", "bias")}
    mask_keys |= {
        "roi_head.mask_head.upsample.weight": (256, 256, 2, 2),
        "roi_head.mask_head.upsample.bias": (256,),
        "roi_head.mask_head.conv_logits.weight": (80, 256, 1, 1),
        "roi_head.mask_head.conv_logits.bias": (80,),
    }
    assert _shapes(model.state_dict()) == {**mmdet_resnet50_fpn_keys(), **RPN_HEAD_KEYS, **BBOX_HEAD_KEYS, **mask_keys}


def test_detcore_convert_command_writes_a_loadable_checkpoint(tmp_path):
    from detcore.checkpoint import load_checkpoint_file
    from detcore.cli.main import main as detcore_main

    torch.manual_seed(0)
    tv = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    code = detcore_main(
        ["convert", "--from", "torchvision", "--arch", "fasterrcnn_resnet50_fpn", str(tmp_path / "tv.pth"),
         str(tmp_path / "ours.pth")]
    )
    assert code == 0
    model = build_model("faster_rcnn_r50_fpn_torchvision", inference_only=True)
    result = model.load_state_dict(load_checkpoint_file(tmp_path / "ours.pth")["state_dict"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(model.rpn_head.rpn_cls.weight, tv.rpn.head.cls_logits.weight)
