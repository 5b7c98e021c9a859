"""DetectoRS's shapes configs (Qiao et al. 2021, "DetectoRS": recursive feature pyramid + switchable atrous
convolution under Cascade R-CNN and HTC) build what makes them DetectoRS and train: a few SGD steps on a
synthetic batch lower their losses."""

import math

import pytest
import torch

from det_common.backbones.detectors_resnet import DetectoRSResNet
from det_common.layers.sac import SAConv2d
from det_common.necks.rfp import RFP
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.engine.optim import param_groups
from detcore.registry import build
from test_htc import shapes_training


def test_detectors_shapes_config_trains_on_a_synthetic_batch():
    cfg = load_config("detectors_cascade_rcnn_r50_shapes")["model"]
    for stage in cfg["train_cfg"]["rcnn"]:  # fewer RoIs keep the test fast
        stage["sampler"]["num"] = 32
    cfg["train_cfg"]["rpn_proposal"]["max_per_img"] = 100
    torch.manual_seed(0)
    model = build("detectors", cfg)
    assert isinstance(model.backbone, DetectoRSResNet) and isinstance(model.neck, RFP)
    assert len(model.neck.rfp_modules) == 1  # two RFP steps: one more backbone fed by the pyramid
    assert any(isinstance(m, SAConv2d) and m.use_deform for m in model.neck.rfp_modules[0].modules())
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)
    history = train_steps(model, batch, steps=8, lr=0.005)
    assert {"loss_rpn_cls", "s0.loss_cls", "s2.loss_bbox"} <= set(history[0])
    assert all(math.isfinite(h["total"]) for h in history)
    assert history[-1]["total"] < 0.8 * history[0]["total"]
    for name in ("loss_rpn_cls", "s0.loss_cls"):
        assert history[-1][name] < history[0][name], name
    # the feedback path trains too: the zero-initialised rfp_convs and fusion weight have moved
    blocks = model.neck.rfp_modules[0].modules()
    rfp_convs = [m.rfp_conv.weight for m in blocks if getattr(m, "rfp_conv", None) is not None]
    assert len(rfp_convs) == 3 and all(w.abs().sum() > 0 for w in rfp_convs)
    assert model.neck.rfp_weight.weight.abs().sum() > 0


@pytest.mark.parametrize("config", ["detectors_cascade_rcnn_r50_shapes", "detectors_htc_r50_shapes"])
def test_detectors_shapes_configs_train_sac_offsets_and_switches_at_a_tenth_of_the_rate(config):
    cfg = load_config(config)
    model = build("detectors", cfg["model"])
    optimizer = cfg["optimizer"]
    groups = param_groups(model, optimizer["lr"], optimizer["weight_decay"], optimizer["paramwise"])
    slow = {name for group in groups if math.isclose(group["lr"], 0.1 * optimizer["lr"]) for name in group["names"]}
    sac_parts = {name for name, _ in model.named_parameters() if name.split(".")[-2] in ("offset_s", "offset_l", "switch")}
    assert sac_parts and slow == sac_parts  # both backbones' SAC offsets and switches, and nothing else


def test_detectors_htc_shapes_config_trains_on_a_synthetic_batch_with_semantic_maps():
    history = shapes_training("detectors_htc_r50_shapes", size=(96, 128))  # SAC's reflect padding: C5 >= 3 x 3
    assert "loss_semantic_seg" in history[0] and "s2.loss_mask" in history[0]
    assert all(math.isfinite(h["total"]) for h in history)
    assert history[-1]["total"] < history[0]["total"]
