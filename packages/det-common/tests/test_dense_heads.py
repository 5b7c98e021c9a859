"""Dense-head base classes: candidate selection, mapping back, anchor targets and losses."""

from __future__ import annotations

import math

import pytest
import torch

from det_common.heads import AnchorHead
from det_common.postprocess import filter_scores_and_topk, map_boxes_back, nms_post_process
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances


def test_filter_scores_and_topk_keeps_best_pairs_above_threshold() -> None:
    scores = torch.tensor([[0.1, 0.9], [0.6, 0.02], [0.3, 0.5]])
    kept, labels, priors = filter_scores_and_topk(scores, 0.2, 3)
    torch.testing.assert_close(kept, torch.tensor([0.9, 0.6, 0.5]))
    assert labels.tolist() == [1, 0, 1] and priors.tolist() == [0, 1, 2]
    kept, labels, priors = filter_scores_and_topk(scores, 0.55, 0)
    assert kept.tolist() == [0.8999999761581421, 0.6000000238418579] and priors.tolist() == [0, 1]
    # fewer pairs above the threshold than topk: the threshold still applies after the selection
    kept, labels, priors = filter_scores_and_topk(scores, 0.55, 4)
    assert kept.tolist() == [0.8999999761581421, 0.6000000238418579] and labels.tolist() == [1, 0]


def test_map_boxes_back_undoes_flip_then_scale() -> None:
    meta = ImageMeta(ori_shape=(25, 100), img_shape=(100, 200), pad_shape=(100, 200), scale_factor=(2.0, 4.0),
                     flip=True, flip_direction="horizontal")
    boxes = map_boxes_back(torch.tensor([[10.0, 20.0, 30.0, 40.0]]), meta)
    torch.testing.assert_close(boxes, torch.tensor([[85.0, 5.0, 95.0, 10.0]]))


def one_level_head():
    cfg = {
        "type": "AnchorHead", "num_classes": 2, "in_channels": 8,
        "anchor_generator": {"type": "AnchorGenerator", "strides": [16], "ratios": [1.0], "scales": [2.0]},
        "loss_cls": {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0},
        "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0},
    }
    train_cfg = {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.0}}
    return build("dense_heads", cfg, train_cfg=train_cfg, test_cfg=None)


def test_anchor_targets_and_focal_loss_value() -> None:
    head = one_level_head()
    assert not head.sampling  # focal loss weighs every anchor: PseudoSampler
    for p in head.parameters():
        torch.nn.init.zeros_(p)
    gt = Instances(boxes=torch.tensor([[0.0, 0.0, 32.0, 32.0]]), labels=torch.tensor([1]))
    meta = ImageMeta(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
    feats = [torch.zeros(1, 8, 4, 4)]
    outs = head(feats)
    priors = head.get_priors(outs)  # 32 x 32 anchors centred at k * 16
    pred = head.assignment_inputs(priors, outs, 0, meta)
    targets = head.get_targets_single(pred, gt, None, meta)
    expected = torch.full((16,), 2)
    expected[5] = 1  # the anchor centred at (16, 16) is the ground truth itself
    assert targets.labels.tolist() == expected.tolist()
    assert targets.pos_inds.tolist() == [5] and targets.assigned_gt_inds[5] == 1
    assert targets.label_weights.tolist() == [1.0] * 16 and targets.avg_factor == 1.0
    assert targets.bbox_weights[5].tolist() == [1.0] * 4 and float(targets.bbox_weights.sum()) == 4.0
    torch.testing.assert_close(targets.bbox_targets[5], torch.zeros(4))

    losses = head.loss(feats, Batch(images=torch.zeros(1, 3, 64, 64), metas=[meta], gt=[gt]))
    # zero logits (p = 0.5): 31 negative (anchor, class) pairs and 1 positive, averaged over 1 positive
    expected_cls = math.log(2) * (31 * 0.75 * 0.25 + 0.25 * 0.25)
    torch.testing.assert_close(losses["loss_cls"], torch.tensor(expected_cls))
    torch.testing.assert_close(losses["loss_bbox"], torch.tensor(0.0))


def test_predict_keeps_best_per_class_after_nms() -> None:
    head = one_level_head()
    for p in head.parameters():
        torch.nn.init.zeros_(p)
    with torch.no_grad():
        head.conv_cls.bias.copy_(torch.tensor([2.0, -5.0]))  # class 0: 0.88 everywhere, class 1 below 0.05
    meta = ImageMeta(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
    head.eval()
    (dets,) = head.predict([torch.zeros(1, 8, 4, 4)], [meta])
    # 16 anchors decode to themselves, clipped to the image; NMS 0.5 keeps the non-overlapping ones
    assert set(dets.labels.tolist()) == {0}
    assert torch.allclose(dets.scores, torch.sigmoid(torch.tensor(2.0)))
    assert len(dets) >= 4 and bool((dets.boxes >= 0).all()) and bool((dets.boxes <= 64).all())


class PerLevelAnchorHead(AnchorHead):
    """SSD-style: each level has its own convs and its own number of anchors per location."""

    def _init_layers(self) -> None:
        counts = self.prior_generator.num_base_priors
        self.cls_convs = torch.nn.ModuleList(torch.nn.Conv2d(self.in_channels, a * self.cls_out_channels, 1) for a in counts)
        self.reg_convs = torch.nn.ModuleList(torch.nn.Conv2d(self.in_channels, a * 4, 1) for a in counts)

    def forward_single(self, x: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cls_convs[level](x), self.reg_convs[level](x)


def test_levels_with_different_anchor_counts_train_and_predict() -> None:
    anchors = {"type": "AnchorGenerator", "strides": [8, 16], "ratios": [1.0], "sizes": [[16.0], [32.0, 48.0]]}
    softmax_ce = {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": 1.0}
    train_cfg = {
        "assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.4, "min_pos_iou": 0.0},
        "sampler": {"type": "RandomSampler", "num": 32, "pos_fraction": 0.25, "add_gt_as_proposals": False},
    }
    head = PerLevelAnchorHead(2, 8, anchor_generator=anchors, loss_cls=softmax_ce, train_cfg=train_cfg,
                              test_cfg={"nms": {"type": "soft_nms", "iou_threshold": 0.3, "sigma": 0.5}})
    assert head.sampling and head.cls_out_channels == 3  # cross-entropy needs sampling; softmax has background
    meta = ImageMeta(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
    gt = Instances(boxes=torch.tensor([[8.0, 8.0, 40.0, 40.0]]), labels=torch.tensor([1]))
    batch = Batch(images=torch.zeros(2, 3, 64, 64), metas=[meta, meta], gt=[gt, gt])
    feats = [torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    outs = head(feats)
    priors = head.get_priors(outs)
    assert priors.num_per_level == [64 * 1, 16 * 2]
    targets = head.get_targets(priors, outs, batch)
    assert targets.labels.shape == (2 * 96,)
    assert bool((targets.pos_inds >= 96).any()) and bool((targets.pos_inds < 96).any())  # offset per image
    assert targets.avg_factor == targets.num_pos + targets.neg_inds.numel()  # sampled: positives + negatives
    losses = head.loss_by_feat(outs, batch)
    assert set(losses) == {"loss_cls", "loss_bbox"} and all(torch.isfinite(v) for v in losses.values())
    head.eval()
    (dets,) = head.predict_by_feat(head([f[:1] for f in feats]), [meta])
    assert len(dets) <= 100 and dets.scores.le(1).all() and set(dets.labels.tolist()) <= {0, 1}


def test_nms_post_process_drops_thin_boxes_and_groups_by_level() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [5.0, 5.0, 5.0, 9.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.zeros(3, dtype=torch.long)
    cfg = {"min_bbox_size": 0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 10}
    result, kept = nms_post_process(boxes, scores, labels, cfg)
    assert kept.tolist() == [0]  # the zero-width box is dropped, the overlapping one suppressed
    result, kept = nms_post_process(boxes, scores, labels, cfg, groups=torch.tensor([0, 1, 1]))
    assert kept.tolist() == [0, 1]  # different levels do not suppress each other
    result, kept = nms_post_process(boxes, scores, labels, {**cfg, "min_bbox_size": -1, "max_per_img": 1},
                                    score_factors=torch.tensor([0.1, 1.0, 1.0]))
    assert kept.tolist() == [1] and float(result.scores[0]) == pytest.approx(0.8)
