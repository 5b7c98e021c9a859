"""torchvision fasterrcnn_resnet50_fpn -> convert -> our twin config gives the same RPN outputs, proposals and detections."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from det_two_stage.converters.torchvision import convert_fasterrcnn_resnet50_fpn
from detcore.structures import Batch
from det_common.bbox import bbox_overlaps as box_iou
from ts_helpers import build_model, metas_for, smooth_images

HEIGHT, WIDTH = 320, 448  # multiples of 64: torchvision then uses the nominal anchor strides on every level


@torch.no_grad()
def _randomize(tv: torch.nn.Module, images: torch.Tensor, generator: torch.Generator) -> None:
    """Seeded random weights with O(1) activations: BatchNorm statistics calibrated on the images,
    RPN outputs of varied objectness, and spread class biases so detections are confident and distinct."""
    for module in tv.backbone.body.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5, generator=generator)
            module.bias.normal_(0.0, 0.2, generator=generator)
            module.momentum = None  # cumulative average: one pass sets the running statistics
            module.reset_running_stats()
    tv.backbone.body.train()
    tv.backbone.body(images)
    head = tv.rpn.head
    head.conv[0][0].weight.normal_(0.0, 0.02, generator=generator)
    head.cls_logits.weight.normal_(0.0, 0.05, generator=generator)
    head.cls_logits.bias.normal_(0.0, 0.5, generator=generator)
    head.bbox_pred.weight.normal_(0.0, 0.02, generator=generator)
    predictor = tv.roi_heads.box_predictor
    predictor.cls_score.weight.normal_(0.0, 0.15, generator=generator)
    predictor.cls_score.bias.copy_(torch.randn(91, generator=generator) * 3.0)
    predictor.cls_score.bias[0] = 1.0
    predictor.bbox_pred.weight.normal_(0.0, 0.02, generator=generator)
    predictor.bbox_pred.bias.normal_(0.0, 0.1, generator=generator)
    tv.eval()


@pytest.fixture(scope="module")
def twins():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = smooth_images(2, HEIGHT, WIDTH, generator)
    tv = fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=HEIGHT, max_size=WIDTH, image_mean=[0.0] * 3, image_std=[1.0] * 3
    )
    _randomize(tv, images, generator)
    converted, unplaced = convert_fasterrcnn_resnet50_fpn(tv.state_dict())
    assert unplaced == []
    ours = build_model("faster_rcnn_r50_fpn_torchvision", inference_only=True)
    result = ours.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    ours.eval()
    return tv, ours, images


@torch.no_grad()
def test_rpn_outputs_and_proposals_match(twins):
    tv, ours, images = twins
    image_list, _ = tv.transform(list(images))
    torch.testing.assert_close(image_list.tensors, images, rtol=0, atol=0)
    tv_feats = tv.backbone(image_list.tensors)
    our_feats = ours.extract_feat(images)
    assert len(our_feats) == len(tv_feats) == 5
    for ours_level, tv_level in zip(our_feats, tv_feats.values()):
        torch.testing.assert_close(ours_level, tv_level, rtol=0, atol=1e-4)

    tv_logits, tv_deltas = tv.rpn.head(list(tv_feats.values()))
    our_outs = ours.rpn_head(our_feats)
    for level in range(5):
        torch.testing.assert_close(our_outs.cls_scores[level], tv_logits[level], rtol=0, atol=1e-4)
        torch.testing.assert_close(our_outs.bbox_preds[level], tv_deltas[level], rtol=0, atol=1e-4)

    tv_proposals, _ = tv.rpn(image_list, tv_feats)
    our_proposals = ours.rpn_head.predict(our_feats, metas_for(images), rescale=False)
    for tv_boxes, mine in zip(tv_proposals, our_proposals):
        assert len(tv_boxes) == 1000
        assert mine.boxes.shape == tv_boxes.shape
        # the same set of boxes; proposals with equal scores may come in either order
        same = (mine.boxes[None, :, :] - tv_boxes[:, None, :]).abs().amax(dim=2) <= 1e-3
        assert bool(same.any(dim=1).all()) and bool(same.any(dim=0).all())
        in_order = (mine.boxes - tv_boxes).abs().amax(dim=1) <= 1e-3
        assert float(in_order.float().mean()) >= 0.99


@torch.no_grad()
def test_detections_match_one_to_one(twins):
    tv, ours, images = twins
    expected = tv(list(images))
    got = ours.predict(Batch(images=images, metas=metas_for(images)))
    total = matched = 0
    for tv_dets, mine in zip(expected, got):
        total += len(tv_dets["boxes"])
        assert len(tv_dets["boxes"]) >= 30, "the random weights should give many detections"
        assert len(mine) == len(tv_dets["boxes"])
        iou = box_iou(tv_dets["boxes"], mine.boxes)
        free = torch.ones(len(mine), dtype=torch.bool)
        for i in range(len(tv_dets["boxes"])):
            ok = (
                free
                & (mine.labels + 1 == tv_dets["labels"][i])
                & (iou[i] >= 0.99)
                & ((mine.scores - tv_dets["scores"][i]).abs() <= 1e-3)
            )
            if ok.any():
                j = int(torch.nonzero(ok)[0])
                free[j] = False
                matched += 1
    assert matched >= 0.99 * total
