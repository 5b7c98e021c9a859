"""Cascade R-CNN: MMDetection weight layout, stage refinement and score averaging, losses, training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import det_cascade
from det_cascade.heads.cascade_roi_head import CascadeRoIHead
from det_common.bbox import bbox2roi
from det_common.heads.roi.standard_roi_head import StandardRoIHead
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

MODEL_CFG = Path(det_cascade.__file__).parent / "configs" / "_base_" / "models" / "cascade_rcnn_r50_fpn.toml"
EXTRACTOR = {"type": "SingleRoIExtractor", "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 2,
                                                          "aligned": True},
             "out_channels": 8, "featmap_strides": [4, 8]}
CODER = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4}
MASK_EXTRACTOR = {**EXTRACTOR, "roi_layer": {**EXTRACTOR["roi_layer"], "output_size": 14}}
MASK_HEAD = {"type": "FCNMaskHead", "num_convs": 1, "in_channels": 8, "conv_out_channels": 8, "num_classes": 3}


def box_head(stds: list[float], agnostic: bool = True) -> dict:
    return {"type": "Shared2FCBBoxHead", "in_channels": 8, "fc_out_channels": 32, "roi_feat_size": 7, "num_classes": 3,
            "bbox_coder": {**CODER, "target_stds": stds}, "reg_class_agnostic": agnostic}


def stage_cfg(iou: float) -> dict:
    return {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": iou, "neg_iou_thr": iou, "min_pos_iou": iou,
                         "match_low_quality": False},
            "sampler": {"type": "RandomSampler", "num": 64, "pos_fraction": 0.25, "add_gt_as_proposals": True}}


def tiny_inputs(generator: torch.Generator, num_images: int = 2, num_props: int = 40):
    """FPN-like features for 64x80 images, proposals around three ground-truth boxes per image."""
    feats = [torch.randn(num_images, 8, 16, 20, generator=generator), torch.randn(num_images, 8, 8, 10, generator=generator)]
    metas = [ImageMeta(ori_shape=(64, 80), img_shape=(64, 80), pad_shape=(64, 80))] * num_images
    gts, proposals = [], []
    for _ in range(num_images):
        xy = torch.rand(3, 2, generator=generator) * 40
        gt_boxes = torch.cat([xy, xy + 12 + torch.rand(3, 2, generator=generator) * 20], 1)
        gts.append(Instances((64, 80), boxes=gt_boxes, labels=torch.randint(0, 3, (3,), generator=generator)))
        jitter = torch.randn(num_props, 4, generator=generator) * 4
        props = (gt_boxes.repeat(num_props // 3 + 1, 1)[:num_props] + jitter).clamp(0, 64)
        props[:, 2:] = torch.maximum(props[:, 2:], props[:, :2] + 2)
        proposals.append(Instances((64, 80), boxes=props, scores=torch.rand(num_props, generator=generator)))
    batch = Batch(images=torch.zeros(num_images, 3, 64, 80), metas=metas, gt=gts)
    return feats, proposals, batch


def cascade(num_stages: int = 3, weights=(1.0, 0.5, 0.25), train: bool = True) -> CascadeRoIHead:
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067]][:num_stages]
    return CascadeRoIHead(
        num_stages=num_stages, stage_loss_weights=list(weights)[:num_stages], bbox_roi_extractor=EXTRACTOR,
        bbox_head=[box_head(s) for s in stds],
        train_cfg=[stage_cfg(t) for t in (0.5, 0.6, 0.7)][:num_stages] if train else None,
    )


# -- weights ----------------------------------------------------------------------------------------


def test_state_dict_is_mmdetection_v2_layout_and_loads_strictly():
    cfg = load_config(MODEL_CFG)["model"]
    model = build("detectors", cfg)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    roi_keys = {k: s for k, s in shapes.items() if k.startswith("roi_head.")}
    expected = {}
    for stage in range(3):
        p = f"roi_head.bbox_head.{stage}"
        expected.update({
            f"{p}.shared_fcs.0.weight": (1024, 256 * 7 * 7), f"{p}.shared_fcs.0.bias": (1024,),
            f"{p}.shared_fcs.1.weight": (1024, 1024), f"{p}.shared_fcs.1.bias": (1024,),
            f"{p}.fc_cls.weight": (81, 1024), f"{p}.fc_cls.bias": (81,),
            f"{p}.fc_reg.weight": (4, 1024), f"{p}.fc_reg.bias": (4,),  # class-agnostic regression
        })
    assert roi_keys == expected
    assert {k for k in shapes if k.startswith("rpn_head.")} == {
        f"rpn_head.{m}.{p}" for m in ("rpn_conv", "rpn_cls", "rpn_reg") for p in ("weight", "bias")}
    assert "backbone.layer4.2.conv3.weight" in shapes and "neck.fpn_convs.3.conv.weight" in shapes
    generator = torch.Generator().manual_seed(0)
    checkpoint = {k: torch.randn(s, generator=generator) if s else torch.tensor(3) for k, s in shapes.items()}
    result = model.load_state_dict(checkpoint, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    torch.testing.assert_close(model.roi_head.bbox_head[2].fc_reg.weight, checkpoint["roi_head.bbox_head.2.fc_reg.weight"])


def test_cascade_mask_rcnn_adds_one_mmdetection_mask_head_per_stage():
    model = build("detectors", load_config("cascade_mask_rcnn_r50_fpn_1x_coco")["model"])
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith("roi_head.mask_head.")}
    expected = {}
    for stage in range(3):
        p = f"roi_head.mask_head.{stage}"
        for i in range(4):
            expected[f"{p}.convs.{i}.conv.weight"] = (256, 256, 3, 3)
            expected[f"{p}.convs.{i}.conv.bias"] = (256,)
        expected.update({f"{p}.upsample.weight": (256, 256, 2, 2), f"{p}.upsample.bias": (256,),
                         f"{p}.conv_logits.weight": (80, 256, 1, 1), f"{p}.conv_logits.bias": (80,)})
    assert shapes == expected


# -- inference --------------------------------------------------------------------------------------


def test_one_stage_cascade_is_the_standard_roi_head():
    torch.manual_seed(0)
    standard = StandardRoIHead(bbox_roi_extractor=EXTRACTOR, bbox_head=box_head([0.1, 0.1, 0.2, 0.2], agnostic=False))
    one = CascadeRoIHead(1, [1.0], EXTRACTOR, [box_head([0.1, 0.1, 0.2, 0.2], agnostic=False)])
    one.load_state_dict({k.replace("bbox_head.", "bbox_head.0.", 1): v for k, v in standard.state_dict().items()})
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(1))
    for head in (standard, one):
        head.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 50}
        head.eval()
    with torch.no_grad():
        for a, b in zip(standard.predict(feats, proposals, batch.metas), one.predict(feats, proposals, batch.metas)):
            assert len(a) > 0
            torch.testing.assert_close(b.boxes, a.boxes)
            torch.testing.assert_close(b.scores, a.scores)
            assert torch.equal(b.labels, a.labels)


def test_predict_refines_boxes_stage_by_stage_and_averages_the_logits():
    torch.manual_seed(0)
    head = cascade(num_stages=3, train=False).eval()
    head.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.6}, "max_per_img": 30}
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = head.predict(feats, proposals, batch.metas)
        # by hand: every stage regresses its input boxes with its own coder, the last stage's boxes are kept
        rois = bbox2roi([p.boxes for p in proposals])
        logits = []
        for stage in range(3):
            stage_head = head.bbox_head[stage]
            cls_score, bbox_pred = stage_head(head.bbox_roi_extractor[stage](feats, rois))
            logits.append(cls_score)
            if stage < 2:
                boxes = stage_head.bbox_coder.decode(rois[:, 1:], bbox_pred, max_shape=(64, 80))
                rois = torch.cat([rois[:, :1], boxes], 1)
        mean_logits = sum(logits) / 3
        counts = [len(p) for p in proposals]
        for i, (img_rois, img_cls, img_reg) in enumerate(zip(rois.split(counts), mean_logits.split(counts),
                                                             bbox_pred.split(counts))):
            want = head.bbox_head[2].predict_by_feat(img_rois, img_cls, img_reg, batch.metas[i], True, head.test_cfg)
            torch.testing.assert_close(got[i].boxes, want.boxes)
            torch.testing.assert_close(got[i].scores, want.scores)


def test_predict_with_no_proposals_returns_empty_detections():
    head = cascade(train=False).eval()
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(3))
    empty = [Instances((64, 80), boxes=torch.zeros(0, 4), scores=torch.zeros(0)) for _ in proposals]
    with torch.no_grad():
        out = head.predict(feats, empty, batch.metas)
    assert [len(o) for o in out] == [0, 0]


def test_one_stage_cascade_with_masks_is_the_standard_mask_head():
    torch.manual_seed(0)
    standard = StandardRoIHead(bbox_roi_extractor=EXTRACTOR, bbox_head=box_head([0.1, 0.1, 0.2, 0.2], agnostic=False),
                               mask_roi_extractor=MASK_EXTRACTOR, mask_head=MASK_HEAD)
    one = CascadeRoIHead(1, [1.0], EXTRACTOR, [box_head([0.1, 0.1, 0.2, 0.2], agnostic=False)],
                         mask_roi_extractor=MASK_EXTRACTOR, mask_head=MASK_HEAD)
    state = {k.replace("bbox_head.", "bbox_head.0.", 1).replace("mask_head.", "mask_head.0.", 1): v
             for k, v in standard.state_dict().items()}
    one.load_state_dict(state)
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(8))
    metas = [m.replace(scale_factor=(2.0, 2.0), ori_shape=(32, 40)) for m in batch.metas]
    for head in (standard, one):
        head.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 20,
                         "mask_thr_binary": 0.5}
        head.eval()
    with torch.no_grad():
        for a, b in zip(standard.predict(feats, proposals, metas), one.predict(feats, proposals, metas)):
            assert len(a) > 0 and a.masks.shape == (len(a), 32, 40)
            assert torch.equal(b.masks, a.masks)


def test_mask_probabilities_of_the_stages_are_averaged():
    torch.manual_seed(0)
    head = CascadeRoIHead(2, [1.0, 0.5], EXTRACTOR, [box_head([0.1, 0.1, 0.2, 0.2]), box_head([0.05, 0.05, 0.1, 0.1])],
                          mask_roi_extractor=MASK_EXTRACTOR, mask_head=MASK_HEAD).eval()
    head.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 10,
                     "mask_thr_binary": 0.5}
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(9))
    with torch.no_grad():
        dets = head.predict(feats, proposals, batch.metas, rescale=False)
        rois = bbox2roi([d.boxes for d in dets])
        labels = torch.cat([d.labels for d in dets])
        probs = [head.mask_head[s].class_probs(head.mask_forward(s, feats, rois).logits, labels) for s in range(2)]
        mean = (probs[0] + probs[1]) / 2
        offset = 0
        for d in dets:
            want = head.mask_head[-1].paste_probs(mean[offset : offset + len(d)], d.boxes, (64, 80), 0.5)
            offset += len(d)
            assert torch.equal(d.masks, want)
        # averaging matters: the last stage alone gives other masks somewhere
        alone = head.mask_head[-1].paste_probs(probs[1], torch.cat([d.boxes for d in dets]), (64, 80), 0.5)
        assert not torch.equal(torch.cat([d.masks for d in dets]), alone)


# -- training ---------------------------------------------------------------------------------------


def test_refinement_drops_the_ground_truth_boxes_the_sampler_added():
    torch.manual_seed(0)
    head = cascade(num_stages=2)
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(4))
    boxes = [p.boxes for p in proposals]
    results = head.sample(0, feats, boxes, batch)
    box_results = head.bbox_loss(0, feats, results, batch)
    torch.testing.assert_close(box_results.rois, bbox2roi([r.priors for r in results]))
    refined = head.refine(0, box_results, results, batch.metas)
    for res, out in zip(results, refined):
        added = int(res.pos_is_gt.sum())
        assert added > 0  # the sampler put the gt boxes in front
        assert out.shape == (res.priors.shape[0] - added, 4)
        assert not out.requires_grad
        assert bool((out[:, 2] <= 80).all() and (out[:, 3] <= 64).all())  # clipped to the image


def test_stage_losses_are_named_and_weighted():
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    weighted = cascade(weights=(1.0, 0.5, 0.25))
    plain = cascade(weights=(1.0, 1.0, 1.0))
    plain.load_state_dict(weighted.state_dict())
    torch.manual_seed(7)
    a = weighted.loss(feats, proposals, batch)
    torch.manual_seed(7)
    b = plain.loss(feats, proposals, batch)
    assert set(a) == {f"s{i}.{n}" for i in range(3) for n in ("loss_cls", "loss_bbox", "acc")}
    for stage, weight in enumerate((1.0, 0.5, 0.25)):
        for name in ("loss_cls", "loss_bbox"):
            torch.testing.assert_close(a[f"s{stage}.{name}"], b[f"s{stage}.{name}"] * weight)
        torch.testing.assert_close(a[f"s{stage}.acc"], b[f"s{stage}.acc"])  # logged, not weighted


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="stage_loss_weights has 2 entries for num_stages = 3"):
        CascadeRoIHead(3, [1.0, 0.5], EXTRACTOR, box_head([0.1] * 4))
    with pytest.raises(ValueError, match="bbox_head lists 2 entries for num_stages = 3"):
        CascadeRoIHead(3, [1.0, 0.5, 0.25], EXTRACTOR, [box_head([0.1] * 4)] * 2)
    head = cascade(train=False)
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(6))
    with pytest.raises(ValueError, match="needs train_cfg"):
        head.loss(feats, proposals, batch)


def test_mask_losses_per_stage_are_weighted():
    feats, proposals, batch = tiny_inputs(torch.Generator().manual_seed(10))
    for gt in batch.gt:
        masks = torch.zeros(len(gt), 64, 80, dtype=torch.bool)
        for k, (x1, y1, x2, y2) in enumerate(gt.boxes.round().long().tolist()):
            masks[k, y1:y2, x1:x2] = True
        gt.masks = masks
    torch.manual_seed(0)
    stds = [[0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1]]
    head = CascadeRoIHead(2, [1.0, 0.5], EXTRACTOR, [box_head(s) for s in stds], mask_roi_extractor=MASK_EXTRACTOR,
                          mask_head=MASK_HEAD, train_cfg=[stage_cfg(0.5), stage_cfg(0.6)])
    torch.manual_seed(3)
    losses = head.loss(feats, proposals, batch)
    assert {"s0.loss_mask", "s1.loss_mask"} <= set(losses)
    head.stage_loss_weights = [1.0, 1.0]
    torch.manual_seed(3)
    unweighted = head.loss(feats, proposals, batch)
    torch.testing.assert_close(losses["s1.loss_mask"], unweighted["s1.loss_mask"] * 0.5)
    torch.testing.assert_close(losses["s0.loss_mask"], unweighted["s0.loss_mask"])
    with pytest.raises(ValueError, match="needs a mask_roi_extractor"):
        CascadeRoIHead(2, [1.0, 0.5], EXTRACTOR, box_head(stds[0]), mask_head=MASK_HEAD)


@pytest.mark.parametrize("name", ["cascade_rcnn_r50_fpn_1x_coco", "cascade_rcnn_r18_fpn_shapes",
                                  "cascade_mask_rcnn_r50_fpn_1x_coco", "cascade_mask_rcnn_r18_fpn_shapes"])
def test_shipped_configs_build(name):
    model = build("detectors", load_config(name)["model"])
    assert type(model).__name__ == "CascadeRCNN" and model.roi_head.num_stages == 3


def test_cascade_rcnn_loss_decreases_on_a_tiny_batch():
    torch.manual_seed(0)
    model = build("detectors", load_config("cascade_rcnn_r18_fpn_shapes")["model"])
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(128, 160), num_classes=3)
    history = train_steps(model, batch, steps=12, lr=0.01)
    assert {"loss_rpn_cls", "loss_rpn_bbox", "s0.loss_cls", "s2.loss_bbox", "s1.acc"} <= set(history[0])
    assert all(math.isfinite(h["total"]) for h in history)
    assert history[-1]["total"] < 0.7 * history[0]["total"]
    for name in ("loss_rpn_cls", "s0.loss_cls", "s1.loss_cls", "s2.loss_cls"):
        assert history[-1][name] < history[0][name], name
    model.eval()
    with torch.no_grad():
        detections = model.predict(batch)
    assert len(detections) == 2 and all(d.boxes.shape[1] == 4 for d in detections)
