"""Hybrid Task Cascade: interleaved training, mask information flow, semantic fusion and loss, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from det_cascade.heads.fused_semantic_head import FusedSemanticHead
from det_cascade.heads.htc_roi_head import HybridTaskCascadeRoIHead, SemanticFeatures
from det_common.bbox import bbox2roi
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

EXTRACTOR = {"type": "SingleRoIExtractor", "out_channels": 8, "featmap_strides": [4, 8],
             "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 2, "aligned": True}}
MASK_EXTRACTOR = {**EXTRACTOR, "roi_layer": {**EXTRACTOR["roi_layer"], "output_size": 14}}
SEMANTIC_EXTRACTOR = {**MASK_EXTRACTOR, "featmap_strides": [8]}
SEMANTIC_HEAD = {"type": "FusedSemanticHead", "num_ins": 2, "fusion_level": 1, "num_convs": 1, "in_channels": 8,
                 "conv_out_channels": 8, "num_classes": 4}
STDS = ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])


def mask_head(first: bool) -> dict:
    return {"type": "HTCMaskHead", "with_conv_res": not first, "num_convs": 2, "in_channels": 8,
            "conv_out_channels": 8, "num_classes": 3}


def stage_cfg(iou: float) -> dict:
    return {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": iou, "neg_iou_thr": iou, "min_pos_iou": iou,
                         "match_low_quality": False},
            "sampler": {"type": "RandomSampler", "num": 64, "pos_fraction": 0.25, "add_gt_as_proposals": True},
            "mask_size": 28}


def htc(semantic: bool = True, **kwargs) -> HybridTaskCascadeRoIHead:
    box = [{"type": "Shared2FCBBoxHead", "in_channels": 8, "fc_out_channels": 32, "roi_feat_size": 7, "num_classes": 3,
            "reg_class_agnostic": True, "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_stds": s}} for s in STDS]
    extra = {"semantic_roi_extractor": SEMANTIC_EXTRACTOR, "semantic_head": SEMANTIC_HEAD} if semantic else {}
    return HybridTaskCascadeRoIHead(
        3, [1.0, 0.5, 0.25], bbox_roi_extractor=EXTRACTOR, bbox_head=box, mask_roi_extractor=MASK_EXTRACTOR,
        mask_head=[mask_head(i == 0) for i in range(3)], train_cfg=[stage_cfg(t) for t in (0.5, 0.6, 0.7)],
        **extra, **kwargs)


def inputs(generator: torch.Generator, num_images: int = 2):
    """FPN-like features of 64x80 images, proposals around three boxes per image, masks and semantic maps."""
    feats = [torch.randn(num_images, 8, 16, 20, generator=generator), torch.randn(num_images, 8, 8, 10, generator=generator)]
    metas = [ImageMeta(ori_shape=(64, 80), img_shape=(64, 80), pad_shape=(64, 80))] * num_images
    gts, proposals, maps = [], [], []
    for _ in range(num_images):
        xy = (torch.rand(3, 2, generator=generator) * 40).round()
        boxes = torch.cat([xy, xy + 12 + (torch.rand(3, 2, generator=generator) * 20).round()], 1)
        labels = torch.randint(0, 3, (3,), generator=generator)
        masks = torch.zeros(3, 64, 80, dtype=torch.bool)
        semantic = torch.full((64, 80), 3, dtype=torch.long)
        for k, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[k, y1:y2, x1:x2] = True
            semantic[y1:y2, x1:x2] = labels[k]
        gts.append(Instances((64, 80), boxes=boxes, labels=labels, masks=masks))
        props = (boxes.repeat(14, 1)[:40] + torch.randn(40, 4, generator=generator) * 4).clamp(0, 64)
        props[:, 2:] = torch.maximum(props[:, 2:], props[:, :2] + 2)
        proposals.append(Instances((64, 80), boxes=props, scores=torch.rand(40, generator=generator)))
        maps.append(semantic)
    batch = Batch(images=torch.zeros(num_images, 3, 64, 80), metas=metas, gt=gts, gt_sem_seg=torch.stack(maps))
    return feats, proposals, batch


def test_mask_information_flow_chains_the_earlier_towers_through_conv_res():
    torch.manual_seed(0)
    head = htc(semantic=False)
    feats, proposals, _ = inputs(torch.Generator().manual_seed(1))
    rois = bbox2roi([p.boxes[:10] for p in proposals])
    x = head.mask_roi_extractor[2](feats, rois)
    heads = head.mask_head
    tower0 = heads[0].conv_feats(x)
    tower1 = heads[1].conv_feats(x + heads[1].conv_res(tower0))
    want = heads[2].logits(heads[2].conv_feats(x + heads[2].conv_res(tower1)))
    torch.testing.assert_close(head.mask_forward(2, feats, rois).logits, want)
    torch.testing.assert_close(head.mask_forward(0, feats, rois).logits, heads[0](x))
    # prediction uses the last stage's probabilities
    labels = torch.randint(0, 3, (rois.shape[0],))
    torch.testing.assert_close(head.mask_probs(feats, rois, labels), heads[2].class_probs(want, labels))
    no_flow = htc(semantic=False, mask_info_flow=False)
    no_flow.load_state_dict(head.state_dict())
    torch.testing.assert_close(no_flow.mask_forward(2, feats, rois).logits, heads[2](x))


def test_interleaved_training_resamples_the_refined_boxes_for_the_mask_branch():
    head = htc(semantic=False)
    calls = []
    sample = head.sample

    def recording_sample(stage, feats, boxes, batch):
        calls.append((stage, [b.clone() for b in boxes]))
        return sample(stage, feats, boxes, batch)

    head.sample = recording_sample
    feats, proposals, batch = inputs(torch.Generator().manual_seed(2))
    losses = head.loss(feats, proposals, batch)
    assert [stage for stage, _ in calls] == [0, 0, 1, 1, 2, 2]
    for first, second in zip(calls[1::2], calls[2::2]):  # a stage's mask boxes are the next stage's boxes
        assert all(torch.equal(a, b) for a, b in zip(first[1], second[1]))
    assert not all(torch.equal(a, b) for a, b in zip(calls[0][1], calls[1][1]))
    assert {f"s{s}.{n}" for s in range(3) for n in ("loss_cls", "loss_bbox", "acc", "loss_mask")} == set(losses)
    calls.clear()
    head.interleaved = False
    head.loss(feats, proposals, batch)
    assert [stage for stage, _ in calls] == [0, 1, 2]


def test_semantic_branch_loss_fusion_and_errors():
    torch.manual_seed(0)
    head = htc()
    feats, proposals, batch = inputs(torch.Generator().manual_seed(3))
    losses = head.loss(feats, proposals, batch)
    seg_logits, semantic = head.semantic_head(feats)
    labels = batch.gt_sem_seg[:, ::8, ::8]  # nearest downsampling by 1/8 picks every eighth pixel
    want = 0.2 * F.cross_entropy(seg_logits, labels, ignore_index=255)
    torch.testing.assert_close(losses["loss_semantic_seg"], want)
    # maps already rescaled by the pipeline (SegRescale) give the same loss
    torch.testing.assert_close(head.semantic_head.loss(seg_logits, labels), want)
    with pytest.raises(ValueError, match="seg_scale_factor"):
        head.semantic_head.loss(seg_logits, batch.gt_sem_seg[:, :30])
    with pytest.raises(ValueError, match="gt_sem_seg"):
        head.loss(feats, proposals, Batch(images=batch.images, metas=batch.metas, gt=batch.gt))
    # the semantic features are added to the box and mask RoI features
    rois = bbox2roi([p.boxes[:5] for p in proposals])
    with_semantic = SemanticFeatures(feats, semantic)
    pooled = head.semantic_roi_extractor([semantic], rois)
    torch.testing.assert_close(head.mask_roi_feats(1, with_semantic, rois),
                               head.mask_roi_extractor[1](feats, rois) + pooled)
    torch.testing.assert_close(head.bbox_roi_feats(1, with_semantic, rois),
                               head.bbox_roi_extractor[1](feats, rois) + F.adaptive_avg_pool2d(pooled, 7))
    with pytest.raises(ValueError, match="no semantic map"):
        head.bbox_forward(0, feats, rois)
    head.eval()
    head.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 20,
                     "mask_thr_binary": 0.5}
    with torch.no_grad():
        dets = head.predict(feats, proposals, batch.metas)
    assert len(dets) == 2 and dets[0].masks.shape[1:] == (64, 80)


def test_fused_semantic_head_resizes_every_level_to_the_fusion_level():
    head = FusedSemanticHead(num_ins=3, fusion_level=1, num_convs=0, in_channels=2, conv_out_channels=2, num_classes=5)
    feats = [torch.randn(1, 2, 16, 16), torch.randn(1, 2, 8, 8), torch.randn(1, 2, 4, 4)]
    logits, semantic = head(feats)
    assert logits.shape == (1, 5, 8, 8) and semantic.shape == (1, 2, 8, 8)
    with pytest.raises(ValueError, match="fusion_level"):
        FusedSemanticHead(num_ins=2, fusion_level=2)


def test_htc_shapes_config_trains_on_a_synthetic_batch_with_semantic_maps():
    history = shapes_training("htc_r18_fpn_shapes")
    assert "loss_semantic_seg" in history[0] and "s2.loss_mask" in history[0]
    assert history[-1]["total"] < history[0]["total"]
    assert history[-1]["loss_semantic_seg"] < history[0]["loss_semantic_seg"]


def shapes_training(config: str, size: tuple[int, int] = (64, 96)) -> list[dict[str, float]]:
    """Four SGD steps of a shapes config's model on a synthetic batch with semantic maps (fewer RoIs, for speed)."""
    cfg = load_config(config)["model"]
    for stage in cfg["train_cfg"]["rcnn"]:  # fewer RoIs keep the test fast
        stage["sampler"]["num"] = 32
    cfg["train_cfg"]["rpn_proposal"]["max_per_img"] = 100
    torch.manual_seed(0)
    model = build("detectors", cfg)
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=size, with_masks=True)
    maps = torch.full((2, *size), 3, dtype=torch.long)
    for i, gt in enumerate(batch.gt):
        for mask, label in zip(gt.masks, gt.labels):
            maps[i][mask] = label
    batch.gt_sem_seg = maps[:, ::8, ::8].contiguous()  # as the config's SegRescale(1/8) gives them
    return train_steps(model, batch, steps=4, lr=0.005)


def test_predict_runs_the_semantic_head_on_the_neck_maps_and_pools_fp32_copies():
    """On the bf16 channels-last fast path the semantic head keeps the neck's maps; only the RoI layers convert."""
    torch.manual_seed(0)
    head = htc().eval()
    head.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 20,
                     "mask_thr_binary": 0.5}
    feats, proposals, batch = inputs(torch.Generator().manual_seed(4))
    fast = [f.to(torch.bfloat16).contiguous(memory_format=torch.channels_last) for f in feats]
    seen: dict[str, list] = {"semantic": [], "pooled": []}
    head.semantic_head.register_forward_pre_hook(lambda m, args: seen["semantic"].append(args[0]))
    head.bbox_roi_extractor[0].register_forward_pre_hook(lambda m, args: seen["pooled"].append(args[0]))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        dets = head.predict(fast, proposals, batch.metas)
    assert all(a is b for a, b in zip(seen["semantic"][0], fast))
    assert all(f.dtype == torch.float32 and f.is_contiguous() for f in seen["pooled"][0])
    assert hasattr(seen["pooled"][0], "semantic")  # the semantic features travel with the converted levels
    assert len(dets) == 2 and dets[0].masks.shape[1:] == (64, 80)
