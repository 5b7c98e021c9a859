"""Every det-common component is declared as an entry point and builds from a config table."""

import importlib.metadata

import pytest
import torch

from detcore.registry import build

OWN_KINDS = {
    "backbones", "necks", "losses", "prior_generators", "bbox_coders", "assigners", "samplers",
}

CONFIGS = [
    ("backbones", {"type": "ResNet", "depth": 18}),
    ("backbones", {"type": "ResNetV1d", "depth": 18}),
    ("backbones", {"type": "ResNeXt", "depth": 50, "groups": 4, "base_width": 4, "num_stages": 1,
                   "out_indices": [0]}),
    ("backbones", {"type": "Res2Net", "depth": 50, "base_channels": 8, "base_width": 4, "num_stages": 2,
                   "out_indices": [1]}),
    ("backbones", {"type": "VGG", "depth": 11, "num_stages": 2, "out_indices": [1]}),
    ("backbones", {"type": "HourglassNet", "downsample_times": 2, "num_stacks": 1, "stage_channels": [8, 8, 16],
                   "stage_blocks": [1, 1, 1], "feat_channel": 8}),
    ("backbones", {"type": "DetectoRS_ResNet", "depth": 50, "base_channels": 4, "conv_cfg": {"type": "ConvAWS"},
                   "sac": {"type": "SAC", "use_deform": True}, "stage_with_sac": [False, True, True, True]}),
    ("necks", {"type": "RFP", "rfp_steps": 2, "aspp_out_channels": 2, "in_channels": [16, 32, 64, 128],
               "out_channels": 8, "num_outs": 5,
               "rfp_backbone": {"type": "DetectoRS_ResNet", "depth": 50, "base_channels": 4, "rfp_inplanes": 8}}),
    ("necks", {"type": "FPN", "in_channels": [8, 16], "out_channels": 8, "num_outs": 3}),
    ("necks", {"type": "PAFPN", "in_channels": [8, 16], "out_channels": 8, "num_outs": 2}),
    ("necks", {"type": "NASFCOS_FPN", "in_channels": [4, 8, 16, 32], "out_channels": 8, "num_outs": 5}),
    ("losses", {"type": "CrossEntropyLoss", "use_sigmoid": True}),
    ("losses", {"type": "FocalLoss", "gamma": 2.0, "alpha": 0.25}),
    ("losses", {"type": "SmoothL1Loss", "beta": 1.0 / 9}),
    ("losses", {"type": "L1Loss"}),
    ("losses", {"type": "BalancedL1Loss"}),
    ("losses", {"type": "IoULoss", "mode": "linear"}),
    ("losses", {"type": "GIoULoss"}),
    ("losses", {"type": "DIoULoss"}),
    ("losses", {"type": "CIoULoss"}),
    ("losses", {"type": "BoundedIoULoss", "beta": 0.2}),
    ("losses", {"type": "VarifocalLoss", "alpha": 0.75, "gamma": 2.0}),
    ("prior_generators", {"type": "AnchorGenerator", "strides": [8], "ratios": [1.0], "scales": [4]}),
    ("prior_generators", {"type": "MlvlPointGenerator", "strides": [8, 16]}),
    ("bbox_coders", {"type": "DeltaXYWHBBoxCoder", "target_stds": [0.1, 0.1, 0.2, 0.2]}),
    ("bbox_coders", {"type": "DistancePointBBoxCoder"}),
    ("bbox_coders", {"type": "TBLRBBoxCoder", "normalizer": 4.0}),
    ("assigners", {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4}),
    ("assigners", {"type": "ATSSAssigner", "topk": 9}),
    ("assigners", {"type": "CenterRegionAssigner", "pos_scale": 0.2, "neg_scale": 0.2}),
    ("assigners", {"type": "PointAssigner", "scale": 4, "pos_num": 1}),
    ("samplers", {"type": "RandomSampler", "num": 512, "pos_fraction": 0.25}),
    ("samplers", {"type": "PseudoSampler"}),
    ("samplers", {"type": "OHEMSampler", "num": 512, "pos_fraction": 0.25}),
]


def test_every_own_entry_point_is_covered():
    eps = importlib.metadata.distribution("det-common").entry_points
    declared = {(ep.group.removeprefix("detcore."), ep.name) for ep in eps if ep.group.removeprefix("detcore.") in OWN_KINDS}
    assert declared == {(kind, cfg["type"]) for kind, cfg in CONFIGS}


@pytest.mark.parametrize("kind,cfg", CONFIGS, ids=[c["type"] for _, c in CONFIGS])
def test_build_from_config(kind, cfg):
    obj = build(kind, cfg)
    (entry_point,) = [ep for ep in importlib.metadata.distribution("det-common").entry_points
                      if ep.group == f"detcore.{kind}" and ep.name == cfg["type"]]
    assert type(obj) is entry_point.load()
    if kind == "losses":
        pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
        target = torch.tensor([[1.0, 1.0, 11.0, 12.0]])
        if cfg["type"] in ("CrossEntropyLoss", "FocalLoss"):
            assert obj(torch.randn(4, 3), torch.tensor([0, 1, 2, 3])).item() > 0
        elif cfg["type"] == "VarifocalLoss":  # IoU-aware targets in [0, 1]
            assert obj(torch.randn(4, 3), torch.rand(4, 3)).item() > 0
        else:
            assert obj(pred, target).item() > 0
