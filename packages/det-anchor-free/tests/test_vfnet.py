"""VarifocalNet: the star-shaped sampling points, ATSS targets as point distances, the IoU-aware classification
targets, training on a synthetic batch, empty ground truth and predictions in original pixels."""

from __future__ import annotations

import copy

import torch

from det_common.bbox import bbox_overlaps
from det_common.heads import flatten_levels
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import ImageMeta, Instances


def shapes_cfg() -> dict:
    return copy.deepcopy(load_config("vfnet_r18_fpn_shapes")["model"])


def small_head(**overrides):
    cfg = {"type": "VFNetHead", "num_classes": 2, "in_channels": 32, "feat_channels": 32, "stacked_convs": 1,
           "strides": [8, 16], "regress_ranges": [[-1, 64], [64, 1e8]],
           "norm_cfg": {"type": "GN", "num_groups": 8, "requires_grad": True},
           "anchor_generator": {"type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 4,
                                "scales_per_octave": 1, "center_offset": 0.0, "strides": [8, 16]},
           "train_cfg": {"assigner": {"type": "ATSSAssigner", "topk": 3}, "allowed_border": -1, "pos_weight": -1},
           **overrides}
    return build("dense_heads", cfg)


def test_star_offsets_put_the_nine_taps_on_the_box() -> None:
    """Tap (row i, column j) of the 3x3 kernel lands on (top / point / bottom, left / point / right) of the box."""
    head = small_head()
    stride = 8
    left, top, right, bottom = 16.0, 8.0, 24.0, 40.0
    distances = torch.tensor([left, top, right, bottom]).view(1, 4, 1, 1)
    offsets = head.star_dcn_offset(distances, stride).view(9, 2)
    rows = (-top / stride, 0.0, bottom / stride)
    cols = (-left / stride, 0.0, right / stride)
    for tap in range(9):
        i, j = divmod(tap, 3)
        base = torch.tensor([i - 1.0, j - 1.0])  # where the plain 3x3 kernel samples, in cells
        torch.testing.assert_close(base + offsets[tap], torch.tensor([rows[i], cols[j]]))


def test_star_offsets_pass_a_fraction_of_the_gradient() -> None:
    head = small_head(gradient_mul=0.1)
    distances = torch.full((1, 4, 1, 1), 16.0, requires_grad=True)
    head.star_dcn_offset(distances, 8).sum().backward()
    # per side, three taps move with it: d(offset)/d(side) = +-1/8, scaled by gradient_mul
    torch.testing.assert_close(distances.grad.flatten(), torch.tensor([-3, -3, 3, 3]) * 0.1 / 8)


def test_atss_targets_are_distances_from_the_points() -> None:
    head = small_head()
    points = torch.tensor([[x, y] for y in range(0, 64, 8) for x in range(0, 64, 8)], dtype=torch.float32)
    level_ids = torch.zeros(len(points), dtype=torch.long)
    meta = ImageMeta(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
    anchors = torch.cat([points - 16, points + 16], dim=1)  # octave_base_scale 4 at stride 8
    pred = Instances((64, 64), priors=points, level_ids=level_ids, anchors=anchors,
                     valid=torch.ones(len(points), dtype=torch.bool))
    gt = Instances(boxes=torch.tensor([[12.0, 12.0, 44.0, 44.0]]), labels=torch.tensor([1]))
    targets = head.get_targets_single(pred, gt, None, meta)
    pos = targets.pos_inds
    assert pos.numel() > 0 and bool((targets.labels[pos] == 1).all())
    assert int(targets.labels.eq(2).sum()) == len(points) - pos.numel()
    # positives are the anchors best overlapping the box: their centres lie inside it
    assert bool(((points[pos] > 12) & (points[pos] < 44)).all())
    expected = torch.stack([points[pos, 0] - 12, points[pos, 1] - 12, 44 - points[pos, 0], 44 - points[pos, 1]], 1)
    torch.testing.assert_close(targets.bbox_targets[pos], expected)


def test_iou_aware_classification_target_is_the_refined_iou() -> None:
    """With every prediction a perfect box, the refined IoU is 1 at each positive's class: the varifocal loss
    of logits that score 1 there and 0 elsewhere is then ~0, and the GIoU losses are 0."""
    head = small_head(gradient_mul=0.0)
    feats = [torch.zeros(1, 32, 8, 8), torch.zeros(1, 32, 4, 4)]
    batch = synthetic_batch(torch.Generator().manual_seed(1), num_images=1, size=(64, 64), num_classes=2)
    batch.gt[0] = Instances(boxes=torch.tensor([[12.0, 12.0, 44.0, 44.0]]), labels=torch.tensor([1]))
    outs = head(feats)
    priors = head.get_priors(outs)
    targets = head.get_targets(priors, outs, batch)
    pos = targets.pos_inds
    perfect = targets.bbox_targets.clamp(min=1.0)
    cls_logits = torch.full((priors.flat.shape[0], 2), -30.0)
    cls_logits[pos, 1] = 30.0
    outs.bbox_preds = [perfect[:64].T.reshape(1, 4, 8, 8), perfect[64:].T.reshape(1, 4, 4, 4)]
    outs.extras["bbox_preds_init"] = outs.bbox_preds
    outs.cls_scores = [cls_logits[:64].T.reshape(1, 2, 8, 8), cls_logits[64:].T.reshape(1, 2, 4, 4)]
    losses = head.loss_from_targets(outs, priors, targets, batch)
    assert losses["loss_cls"].item() < 1e-6
    assert losses["loss_bbox"].item() < 1e-5 and losses["loss_bbox_rf"].item() < 1e-5


def positive_ious(model, batch) -> float:
    """Mean IoU of the refined boxes of the ATSS positives with their ground truth."""
    head = model.bbox_head
    with torch.no_grad():
        outs = head(model.extract_feat(batch.images))
        priors = head.get_priors(outs)
        targets = head.get_targets(priors, outs, batch)
        pos = targets.pos_inds
        points = priors.flat.repeat(len(batch.metas), 1)[pos]
        refined = flatten_levels(outs.bbox_preds, 4).reshape(-1, 4)[pos]
        boxes = head.bbox_coder.decode(points, refined)
        gt_boxes = head.bbox_coder.decode(points, targets.bbox_targets[pos])
        return float(bbox_overlaps(boxes, gt_boxes, is_aligned=True).mean())


def test_training_improves_the_boxes_and_reduces_the_loss() -> None:
    """The varifocal targets are the IoUs of the refined boxes, so the classification loss grows while the
    boxes improve (well-placed positives weigh more): the check is on the boxes, and on the total at the end."""
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg()).train()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(80, 96), num_classes=3)
    iou_before = positive_ious(model, batch)
    history = train_steps(model, batch, steps=10, lr=0.005)
    assert set(history[0]) == {"loss_cls", "loss_bbox", "loss_bbox_rf", "total"}
    assert all(torch.isfinite(torch.tensor(h["total"])) for h in history)
    assert positive_ious(model, batch) > 3 * iou_before
    assert history[-1]["total"] < 0.95 * history[0]["total"]


def test_loss_without_ground_truth_is_finite() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg()).train()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 64), num_classes=3)
    batch.gt = [Instances.empty(), Instances.empty()]
    losses = model.loss(batch)
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_bbox_rf"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()
    assert model.bbox_head.vfnet_reg.weight.grad is not None


@torch.no_grad()
def test_predictions_are_in_original_pixels() -> None:
    torch.manual_seed(0)
    cfg = shapes_cfg()
    cfg["test_cfg"]["score_thr"] = 0.0  # untrained: every score is near the 0.01 prior
    model = build("detectors", cfg).eval()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)
    for meta in batch.metas:
        meta.ori_shape, meta.scale_factor = (48, 64), (2.0, 2.0)
    raw = model.predict(batch, rescale=False)
    rescaled = model.predict(batch, rescale=True)
    for r, o in zip(raw, rescaled):
        assert len(r) == len(o) > 0 and r.image_size == (96, 128) and o.image_size == (48, 64)
        torch.testing.assert_close(o.boxes, r.boxes / 2.0)
        assert bool((r.scores[:-1] >= r.scores[1:]).all())


def test_fcos_targets_and_focal_loss_without_atss_and_vfl() -> None:
    """The paper's ablations: FCOS's assignment (points at cell centres) and the focal loss instead of VFL."""
    head = small_head(use_atss=False, use_vfl=False, train_cfg=None)
    assert head.prior_generator.offset == 0.5 and type(head.loss_cls).__name__ == "FocalLoss"
    batch = synthetic_batch(torch.Generator().manual_seed(1), num_images=1, size=(64, 64), num_classes=2)
    losses = head.loss([torch.randn(1, 32, 8, 8), torch.randn(1, 32, 4, 4)], batch)
    assert set(losses) == {"loss_cls", "loss_bbox", "loss_bbox_rf"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
