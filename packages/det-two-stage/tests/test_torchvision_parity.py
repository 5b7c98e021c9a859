"""torchvision fasterrcnn_resnet50_fpn -> convert -> our twin config gives the same RPN outputs, proposals and detections."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from det_two_stage.converters.torchvision import convert_fasterrcnn_resnet50_fpn
from detcore.structures import Batch
from det_common.bbox import bbox_overlaps as box_iou
from ts_helpers import metas_for, torchvision_twins

HEIGHT, WIDTH = 320, 448  # multiples of 64: torchvision then uses the nominal anchor strides on every level


@pytest.fixture(scope="module")
def twins():
    return torchvision_twins(fasterrcnn_resnet50_fpn, convert_fasterrcnn_resnet50_fpn, "faster_rcnn_r50_fpn_torchvision",
                             2, HEIGHT, WIDTH)


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
