"""Cascade RPN: adaptive-conv offsets, the region assigner, stage chaining, proposals and training."""

from __future__ import annotations

import torch

from det_cascade.assigners.region_assigner import RegionAssigner
from det_cascade.heads.cascade_rpn_head import CascadeRPNHead
from det_cascade.layers.adaptive_conv import anchor_offsets
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import ImageMeta, Instances
from detcore import ops

STRIDES = [4, 8, 16, 32, 64]


def test_offsets_put_the_deformable_taps_on_the_anchor():
    """Taps land on the anchor's center, sides and corners; for a 2-cell box centred on its location the
    offsets are zero (the regular 3x3 grid)."""
    stride, size = 8.0, (3, 4)
    anchors = torch.tensor([[[0.0, 0.0, 0.0, 0.0]] * 12])
    anchors[0, 5] = torch.tensor([10.0, 4.0, 26.0, 12.0])  # location (y=1, x=1): center (18, 8), 16 x 8 px
    anchors[0, 6] = torch.tensor([16.0 - 8.0, 8.0 - 8.0, 16.0 + 8.0, 8.0 + 8.0])  # location (1, 2): 2x2 cells
    offsets = anchor_offsets(anchors, stride, size)
    assert offsets.shape == (1, 18, 3, 4)
    assert torch.allclose(offsets[0, :, 1, 2], torch.zeros(18), atol=1e-6)
    taps = offsets[0, :, 1, 1].reshape(9, 2)  # (dy, dx) per tap, row-major
    grid_y, grid_x = torch.meshgrid(torch.arange(-1.0, 2.0), torch.arange(-1.0, 2.0), indexing="ij")
    sampled_x = 1 + grid_x.reshape(-1) + taps[:, 1]
    sampled_y = 1 + grid_y.reshape(-1) + taps[:, 0]
    assert torch.allclose(sampled_x * stride, 18 + grid_x.reshape(-1) * 8)  # center x +- half the width
    assert torch.allclose(sampled_y * stride, 8 + grid_y.reshape(-1) * 4)


def test_zero_offsets_make_the_adaptive_conv_a_plain_conv():
    x, weight = torch.randn(1, 4, 6, 7), torch.randn(5, 4, 3, 3)
    out = ops.deform_conv2d(x, torch.zeros(1, 18, 6, 7), weight, None, 1, 1, 1)
    assert torch.allclose(out, torch.nn.functional.conv2d(x, weight, padding=1), atol=1e-5)


def grid_pred(sizes):
    anchors, levels, strides = [], [], []
    for level, (h, w) in enumerate(sizes):
        s = STRIDES[level]
        ys, xs = torch.meshgrid(torch.arange(h) * s, torch.arange(w) * s, indexing="ij")
        ctr = torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float()
        anchors.append(torch.cat([ctr - 4 * s, ctr + 4 * s], 1))
        levels.append(torch.full((h * w,), level))
        strides.append(torch.full((h * w,), float(s)))
    return Instances((64, 64), priors=torch.cat(anchors), level_ids=torch.cat(levels), strides=torch.cat(strides))


def test_region_assigner_positives_ignores_and_neighbour_levels():
    sizes = [(16, 16), (8, 8), (4, 4)]
    pred = grid_pred(sizes)
    gt = Instances((64, 64), boxes=torch.tensor([[8.0, 8.0, 56.0, 56.0]]), labels=torch.tensor([2]))
    result = RegionAssigner(center_ratio=0.2, ignore_ratio=0.5).assign(pred, gt)
    # scale 48 -> level floor(log2(48 / 32) + 0.5) = 1 (stride 8): box cells 1..7, centre region 3.4..4.6 -> 3..5
    level1 = result.gt_inds[256:320].reshape(8, 8)
    assert (level1[3:6, 3:6] == 1).all() and (level1 == 1).sum() == 9
    assert (result.labels[256:320].reshape(8, 8)[3:6, 3:6] == 2).all()
    assert (level1[2, 2] == -1) and (level1[0, 0] == 0)  # ignore region 2.2..5.8 -> 2..6
    level0 = result.gt_inds[:256].reshape(16, 16)  # the level below: its ignore region (cells 5..11) ignored
    assert (level0[5:12, 5:12] == -1).all() and (level0 == -1).sum() == 49 and (level0 == 0).sum() == 256 - 49
    level2 = result.gt_inds[320:].reshape(4, 4)  # the level above: cells 1..3
    assert (level2[1:4, 1:4] == -1).all() and (level2 == -1).sum() == 9 and not (level2 > 0).any()


def head(with_train: bool = True) -> CascadeRPNHead:
    cfg = load_config("crpn_faster_rcnn_r18_fpn_shapes")["model"]
    return build("dense_heads", cfg["rpn_head"], train_cfg=cfg["train_cfg"]["rpn"] if with_train else None,
                 test_cfg=cfg["test_cfg"]["rpn"], proposal_cfg=cfg["train_cfg"]["rpn_proposal"])


def test_stages_chain_features_and_refined_anchors():
    torch.manual_seed(0)
    rpn = head().eval()
    for stage in rpn.stages:  # a visible regression, so that refinement moves the anchors
        torch.nn.init.normal_(stage.rpn_reg.weight, std=0.05)
    feats = [torch.randn(1, 64, 64 // s, 64 // s) for s in STRIDES]
    metas = [ImageMeta(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))]
    first, second = rpn.stage_outputs(feats, metas)
    assert first.cls_scores[0].shape[1] == 0 and second.cls_scores[0].shape[1] == 1
    expected = rpn.stages[0].refine_anchors(first, metas)
    for level in range(5):
        assert torch.equal(second.extras["anchors"][level], expected[level])
        assert not torch.equal(expected[level], first.extras["anchors"][level])
        assert torch.equal(first.extras["features"][level], second.extras["features"][level])  # bridged
    proposals = rpn.predict(feats, metas)[0]
    assert len(proposals) <= 300 and proposals.boxes.shape[1] == 4
    assert (proposals.boxes[:, 2:] <= 64).all() and (proposals.boxes[:, :2] >= 0).all()


def test_crpn_shapes_config_trains_on_a_synthetic_batch():
    cfg = load_config("crpn_faster_rcnn_r18_fpn_shapes")["model"]
    cfg["train_cfg"]["rcnn"]["sampler"]["num"] = 32
    cfg["train_cfg"]["rpn_proposal"]["max_per_img"] = 100
    torch.manual_seed(0)
    model = build("detectors", cfg)
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96))
    history = train_steps(model, batch, steps=4, lr=0.005)
    assert {"s0.loss_rpn_reg", "s1.loss_rpn_cls", "s1.loss_rpn_reg", "loss_cls", "loss_bbox"} <= set(history[0])
    assert history[-1]["total"] < history[0]["total"]
    assert history[-1]["s0.loss_rpn_reg"] < history[0]["s0.loss_rpn_reg"]


def test_rpn_only_config_predicts_proposals():
    cfg = load_config("crpn_r50_caffe_fpn_1x_coco")["model"]
    cfg["backbone"]["depth"] = 18
    cfg["neck"]["in_channels"] = [64, 128, 256, 512]
    model = build("detectors", cfg).eval()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=1, size=(64, 96))
    with torch.inference_mode():
        proposals = model.predict(batch)[0]
    assert len(proposals) > 0 and proposals.has("scores")
