"""FCOS: MMDetection parameter names, point targets (center sampling, regress ranges), training, prediction."""

from __future__ import annotations

import copy

import torch

from det_common.testing import painted_batch
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import ImageMeta, Instances


def test_head_parameter_names_follow_mmdetection() -> None:
    model = build("detectors", load_config("fcos_r50_caffe_fpn_gn-head")["model"])
    head_keys = {k for k in model.state_dict() if k.startswith("bbox_head.")}
    expected = set()
    for tower in ("cls_convs", "reg_convs"):
        for i in range(4):
            expected |= {f"bbox_head.{tower}.{i}.conv.weight", f"bbox_head.{tower}.{i}.gn.weight",
                         f"bbox_head.{tower}.{i}.gn.bias"}
    for conv in ("conv_cls", "conv_reg", "conv_centerness"):
        expected |= {f"bbox_head.{conv}.weight", f"bbox_head.{conv}.bias"}
    expected |= {f"bbox_head.scales.{i}.scale" for i in range(5)}
    assert head_keys == expected
    assert model.state_dict()["bbox_head.conv_cls.weight"].shape == (80, 256, 3, 3)
    assert "neck.fpn_convs.3.conv.weight" in model.state_dict()  # P6 from P5 ("on_output")
    assert model.state_dict()["neck.fpn_convs.3.conv.weight"].shape == (256, 256, 3, 3)


def two_level_head(center_sampling: bool):
    cfg = {"type": "FCOSHead", "num_classes": 2, "in_channels": 32, "feat_channels": 32, "stacked_convs": 1,
           "strides": [8, 16], "regress_ranges": [[-1, 32], [32, 1e8]], "center_sampling": center_sampling}
    return build("dense_heads", cfg)


def test_point_targets() -> None:
    gt = Instances(boxes=torch.tensor([[10.0, 10.0, 40.0, 40.0], [0.0, 0.0, 100.0, 80.0]]), labels=torch.tensor([1, 0]))
    points = torch.tensor([[20.0, 20.0], [50.0, 50.0], [100.0, 100.0], [12.0, 12.0]])
    pred = Instances((100, 100), priors=points, level_ids=torch.tensor([0, 1, 1, 0]))  # strides 8, 16, 16, 8
    meta = ImageMeta(ori_shape=(100, 100), img_shape=(100, 100), pad_shape=(100, 100))

    targets = two_level_head(False).get_targets_single(pred, gt, None, meta)
    assert targets.labels.tolist() == [1, 0, 2, 1]  # 2 = background
    assert targets.assigned_gt_inds.tolist() == [1, 2, 0, 1] and targets.pos_inds.tolist() == [0, 1, 3]
    torch.testing.assert_close(targets.bbox_targets[0], torch.tensor([10.0, 10.0, 20.0, 20.0]))
    torch.testing.assert_close(targets.bbox_targets[1], torch.tensor([50.0, 50.0, 50.0, 30.0]))
    torch.testing.assert_close(targets.bbox_targets[3], torch.tensor([2.0, 2.0, 28.0, 28.0]))
    torch.testing.assert_close(targets.extras["centerness"][:3], torch.tensor([0.5, 0.6 ** 0.5, 0.0]))

    targets = two_level_head(True).get_targets_single(pred, gt, None, meta)
    assert targets.labels.tolist() == [1, 0, 2, 2]  # (12, 12) is outside box 0's central 1.5-stride region


def small_fcos_cfg() -> dict:
    cfg = copy.deepcopy(load_config("fcos_r50_caffe_fpn_gn-head")["model"])
    cfg["backbone"].update(depth=18, frozen_stages=-1, norm_eval=False, style="pytorch",
                           norm_cfg={"type": "BN", "requires_grad": True})
    cfg["neck"].update(in_channels=[64, 128, 256, 512], out_channels=64)
    cfg["bbox_head"].update(num_classes=3, in_channels=64, feat_channels=64, stacked_convs=2,
                            center_sampling=True, norm_on_bbox=True, centerness_on_reg=True)
    return cfg


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", small_fcos_cfg())
    model.train()
    batch = painted_batch()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    totals = []
    for _ in range(20):
        losses = model.loss(batch)
        assert set(losses) == {"loss_cls", "loss_bbox", "loss_centerness"}
        assert all(torch.isfinite(v) for v in losses.values())
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    assert sum(totals[-3:]) / 3 < 0.8 * sum(totals[:3]) / 3


def test_loss_without_ground_truth_is_finite() -> None:
    torch.manual_seed(0)
    model = build("detectors", small_fcos_cfg()).train()
    batch = painted_batch()
    batch.gt = [Instances.empty(), Instances.empty()]
    losses = model.loss(batch)
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_centerness"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()


@torch.no_grad()
def test_predictions_are_in_original_pixels() -> None:
    torch.manual_seed(0)
    cfg = small_fcos_cfg()
    cfg["test_cfg"]["score_thr"] = 0.0  # untrained: every score is near the 0.01 prior
    model = build("detectors", cfg).eval()
    batch = painted_batch()
    raw = model.predict(batch, rescale=False)
    rescaled = model.predict(batch, rescale=True)
    for r, o in zip(raw, rescaled):
        assert len(r) == 100
        assert r.image_size == (128, 160) and o.image_size == (64, 80)
        torch.testing.assert_close(o.boxes, r.boxes / 2.0)
        assert bool((r.scores[:-1] >= r.scores[1:]).all())
