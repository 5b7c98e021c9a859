"""Sparse R-CNN's parts and its shapes model on synthetic batches: dynamic convolution by hand, learned proposals
in pixels, the loss falls, an image (and a batch) without objects trains, more objects than proposals."""

import math

import pytest
import torch

from det_common.testing import synthetic_batch, train_steps
from det_transformer.heads.embedding_rpn_head import EmbeddingRPNHead
from det_transformer.layers.dynamic_conv import DynamicConv
from detcore.structures import ImageMeta
from detcore.config import load_config
from detcore.registry import build
from tr_helpers import without_gt

CONFIG = "sparse_rcnn_r18_fpn_shapes"


def tiny_model(num_proposals: int = 10) -> torch.nn.Module:
    """The shapes config's model narrowed to 32 channels and two stages (fast on a shared CPU), seeded."""
    cfg = load_config(CONFIG)["model"]
    cfg["neck"]["out_channels"] = cfg["roi_head"]["bbox_roi_extractor"]["out_channels"] = 32
    cfg["rpn_head"].update(num_proposals=num_proposals, proposal_feature_channel=32)
    cfg["roi_head"].update(num_stages=2, stage_loss_weights=[1, 1], proposal_feature_channel=32)
    cfg["roi_head"]["bbox_head"].update(in_channels=32, feedforward_channels=64, num_heads=2)
    cfg["roi_head"]["bbox_head"]["dynamic_conv_cfg"].update(in_channels=32, feat_channels=8, out_channels=32)
    cfg["test_cfg"]["rcnn"]["max_per_img"] = num_proposals
    torch.manual_seed(0)
    return build("detectors", cfg)


@pytest.fixture(scope="module")
def batch():
    return synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)


def test_dynamic_conv_mixes_each_proposals_roi_with_its_own_weights():
    torch.manual_seed(0)
    conv = DynamicConv(in_channels=6, feat_channels=3, out_channels=5, input_feat_shape=2, with_proj=False)
    params, rois = torch.randn(4, 6), torch.randn(4, 6, 2, 2)
    out = conv(params, rois)
    relu = torch.nn.functional.relu
    for k in range(4):
        weights = conv.dynamic_layer(params[k])
        w_in, w_out = weights[:18].view(6, 3), weights[18:].view(3, 5)
        cells = rois[k].flatten(1).t()
        want = relu(conv.norm_out(relu(conv.norm_in(cells @ w_in)) @ w_out))
        torch.testing.assert_close(out[k], want)
    assert DynamicConv(6, 3, 5, input_feat_shape=2)(params, rois).shape == (4, 5)


def test_embedding_proposals_start_as_the_whole_image_and_carry_gradient():
    head = EmbeddingRPNHead(num_proposals=3, proposal_feature_channel=8)
    proposals = head.predict([], [ImageMeta((50, 80), (40, 64), (64, 64))])
    assert torch.equal(proposals[0].boxes, torch.tensor([[0.0, 0.0, 64.0, 40.0]] * 3))
    assert proposals[0].features.shape == (3, 8) and proposals[0].boxes.requires_grad
    assert head.loss([], None) == {}


def test_loss_falls(batch):
    model = tiny_model()
    history = train_steps(model, batch, steps=6, lr=0.002)
    assert {"s0.loss_cls", "s0.loss_bbox", "s0.loss_iou", "s1.loss_cls", "s1.pos_acc"} <= set(history[0])
    assert history[-1]["total"] < 0.9 * history[0]["total"], [h["total"] for h in history]
    model.eval()
    with torch.no_grad():
        detections = model.predict(batch)
        feats, (boxes, features) = model.forward_tensor(batch.images)  # what `detcore export` / flops trace
    assert all(len(d) == 10 and d.boxes.shape == (10, 4) for d in detections)
    assert len(feats) == 3 and boxes.shape == (10, 4) and features.shape == (10, 32)


def test_first_stage_trains_the_learned_proposal_boxes(batch):
    model = tiny_model()
    losses = model.loss(batch)
    losses["s0.loss_iou"].backward()
    assert model.rpn_head.init_proposal_bboxes.weight.grad.abs().sum() > 0


def test_an_image_without_objects_trains(batch):
    model = tiny_model()
    history = train_steps(model, without_gt(batch, 1), steps=2, lr=0.002)
    assert all(math.isfinite(h["total"]) for h in history)
    losses = model.loss(without_gt(without_gt(batch, 0), 1))
    assert losses["s0.loss_bbox"].item() == 0.0 and losses["s1.loss_iou"].item() == 0.0
    assert 0 < losses["s0.loss_cls"].item() < 100  # averaged over at least one proposal, not divided by zero
    sum(v for k, v in losses.items() if "loss" in k).backward()


def test_more_objects_than_proposals_match_every_proposal(batch):
    model = tiny_model(num_proposals=2)
    assert all(len(gt) == 3 for gt in batch.gt)
    losses = model.loss(batch)
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert losses["s0.pos_acc"].item() in (0.0, 25.0, 50.0, 75.0, 100.0)  # 2 matched proposals per image
