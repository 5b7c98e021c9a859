"""RetinaNet: MMDetection parameter names, training on a tiny batch, predictions in original pixels."""

from __future__ import annotations

import copy

import torch

from det_common.testing import painted_batch
from detcore.config import load_config
from detcore.registry import build

RESNET50_BLOCKS = {"layer1": 3, "layer2": 4, "layer3": 6, "layer4": 3}
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def mmdet_retinanet_keys() -> set[str]:
    """The state-dict keys of MMDetection v2's retinanet_r50_fpn_1x_coco checkpoint, written out by rule."""
    keys = {"backbone.conv1.weight"} | {f"backbone.bn1.{s}" for s in BN_SUFFIXES}
    for layer, blocks in RESNET50_BLOCKS.items():
        for b in range(blocks):
            prefix = f"backbone.{layer}.{b}"
            for i in (1, 2, 3):
                keys.add(f"{prefix}.conv{i}.weight")
                keys |= {f"{prefix}.bn{i}.{s}" for s in BN_SUFFIXES}
            if b == 0:
                keys.add(f"{prefix}.downsample.0.weight")
                keys |= {f"{prefix}.downsample.1.{s}" for s in BN_SUFFIXES}
    for i in range(3):
        keys |= {f"neck.lateral_convs.{i}.conv.weight", f"neck.lateral_convs.{i}.conv.bias"}
    for i in range(5):
        keys |= {f"neck.fpn_convs.{i}.conv.weight", f"neck.fpn_convs.{i}.conv.bias"}
    for tower in ("cls_convs", "reg_convs"):
        for i in range(4):
            keys |= {f"bbox_head.{tower}.{i}.conv.weight", f"bbox_head.{tower}.{i}.conv.bias"}
    keys |= {"bbox_head.retina_cls.weight", "bbox_head.retina_cls.bias",
             "bbox_head.retina_reg.weight", "bbox_head.retina_reg.bias"}
    return keys


def test_mmdet_checkpoint_layout_loads_strictly() -> None:
    model = build("detectors", load_config("retinanet_r50_fpn")["model"])
    state = model.state_dict()
    expected = mmdet_retinanet_keys()
    assert set(state) == expected
    assert state["bbox_head.retina_cls.weight"].shape == (9 * 80, 256, 3, 3)
    assert state["bbox_head.retina_reg.weight"].shape == (9 * 4, 256, 3, 3)
    assert state["neck.fpn_convs.3.conv.weight"].shape == (256, 2048, 3, 3)  # P6 on C5 ("on_input")
    checkpoint = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in state.items()}
    fresh = build("detectors", load_config("retinanet_r50_fpn")["model"])
    result = fresh.load_state_dict(checkpoint, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(fresh.bbox_head.retina_cls.bias, checkpoint["bbox_head.retina_cls.bias"])


def small_retinanet_cfg() -> dict:
    cfg = copy.deepcopy(load_config("retinanet_r50_fpn")["model"])
    cfg["backbone"].update(depth=18, frozen_stages=-1, norm_eval=False)
    cfg["neck"].update(in_channels=[64, 128, 256, 512], out_channels=64)
    cfg["bbox_head"].update(num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2)
    return cfg


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", small_retinanet_cfg())
    model.train()
    batch = painted_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    totals = []
    for _ in range(20):
        losses = model.loss(batch)
        assert set(losses) == {"loss_cls", "loss_bbox"}
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    assert sum(totals[-3:]) / 3 < 0.8 * sum(totals[:3]) / 3


@torch.no_grad()
def test_predictions_are_in_original_pixels() -> None:
    torch.manual_seed(0)
    cfg = small_retinanet_cfg()
    cfg["test_cfg"]["score_thr"] = 0.0  # untrained: every score is near the 0.01 prior
    model = build("detectors", cfg).eval()
    batch = painted_batch()
    raw = model.predict(batch, rescale=False)
    rescaled = model.predict(batch, rescale=True)
    for r, o in zip(raw, rescaled):
        assert len(r) == 100
        assert r.image_size == (128, 160) and o.image_size == (64, 80)
        torch.testing.assert_close(o.boxes, r.boxes / 2.0)
        assert bool((r.boxes[:, 2] <= 160).all()) and bool((r.boxes[:, 3] <= 128).all())
        assert bool((r.scores[:-1] >= r.scores[1:]).all())
        assert set(r.labels.tolist()) <= {0, 1, 2}
