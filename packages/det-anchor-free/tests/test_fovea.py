"""FoveaBox: fovea targets (size ranges per level, the central sigma of the box in whole cells, smallest box
wins), feature alignment, training on a synthetic batch, empty ground truth and predictions in original pixels."""

from __future__ import annotations

import copy
import math

import torch

from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import ImageMeta, Instances


def shapes_cfg() -> dict:
    return copy.deepcopy(load_config("fovea_r18_fpn_shapes")["model"])


def test_fovea_targets() -> None:
    head = build("dense_heads", {"type": "FoveaHead", "num_classes": 2, "in_channels": 8, "feat_channels": 8,
                                 "stacked_convs": 1, "strides": [8, 16], "base_edge_list": [16, 32],
                                 "scale_ranges": [[1, 40], [20, 200]], "sigma": 0.4})
    meta = ImageMeta(ori_shape=(64, 64), img_shape=(64, 64), pad_shape=(64, 64))
    levels = [torch.tensor([[(x + 0.5) * s, (y + 0.5) * s] for y in range(64 // s) for x in range(64 // s)])
              for s in (8, 16)]
    pred = Instances((64, 64), priors=torch.cat(levels),
                     level_ids=torch.cat([torch.full((len(p),), i) for i, p in enumerate(levels)]))
    # box 0 (size 32) fits both levels, box 1 (size 16) only the first and overlaps box 0's fovea
    gt = Instances(boxes=torch.tensor([[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 24.0, 24.0]]), labels=torch.tensor([0, 1]))
    targets = head.get_targets_single(pred, gt, None, meta)
    first = targets.labels[:64].view(8, 8)
    # box 0 on stride 8: cells 4 wide, fovea cells ceil(0 + 0.6 * 2 - 0.5) = 1 .. floor(1.4 * 2 - 0.5) = 2;
    # box 1 (cells 1-3): fovea ceil(1 + 0.6 - 0.5) = 2 .. floor(1 + 1.4 - 0.5) = 1: empty, so box 0 keeps them
    assert first[1:3, 1:3].eq(0).all() and int(first.ne(2).sum()) == 4
    second = targets.labels[64:].view(4, 4)
    # stride 16: box 0 is 2 cells, fovea ceil(0.6 - 0.5) = 1 .. floor(1.4 - 0.5) = 0: empty
    assert second.eq(2).all()
    cell = 1 * 8 + 1  # point (12, 12): distances 12, 12, 20, 20 in base edges of 16, as logs
    torch.testing.assert_close(targets.bbox_targets[cell], torch.log(torch.tensor([12.0, 12.0, 20.0, 20.0]) / 16))


def test_decoded_boxes_are_clamped_inside_the_image() -> None:
    head = build("dense_heads", {**shapes_cfg()["bbox_head"]})
    priors = torch.tensor([[4.0, 4.0, 16.0], [60.0, 30.0, 32.0]])
    boxes = head.decode(priors, torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, math.log(0.5), 1.0, 0.0]]), (40, 64))
    torch.testing.assert_close(boxes, torch.tensor([[0.0, 0.0, 20.0, 20.0], [28.0, 14.0, 63.0, 39.0]]))


def test_feature_alignment_reads_the_predicted_box() -> None:
    torch.manual_seed(0)
    head = build("dense_heads", {**shapes_cfg()["bbox_head"], "with_deform": True,
                                 "norm_cfg": {"type": "GN", "num_groups": 16, "requires_grad": True}})
    assert {"feature_adaption.conv_offset.weight", "feature_adaption.conv_adaption.weight",
            "cls_convs.1.conv.weight", "conv_cls.weight"} <= set(head.state_dict())
    x = torch.randn(1, 128, 6, 6)
    cls_score, bbox_pred = head.forward_single(x, 0)
    assert cls_score.shape == (1, 3, 6, 6) and bbox_pred.shape == (1, 4, 6, 6)
    with torch.no_grad():
        head.conv_reg.bias.add_(1.0)  # larger boxes move the sampling points: other class scores
    assert not torch.allclose(head.forward_single(x, 0)[0], cls_score)


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg())
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(80, 96), num_classes=3)
    history = train_steps(model, batch, steps=8, lr=0.01)
    assert set(history[0]) == {"loss_cls", "loss_bbox", "total"}
    assert sum(h["total"] for h in history[-2:]) < 0.8 * sum(h["total"] for h in history[:2])


def test_loss_without_ground_truth_is_finite() -> None:
    model = build("detectors", shapes_cfg()).train()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 64), num_classes=3)
    batch.gt = [Instances.empty(), Instances.empty()]
    losses = model.loss(batch)
    assert losses["loss_bbox"].item() == 0.0 and torch.isfinite(losses["loss_cls"])
    sum(losses.values()).backward()


@torch.no_grad()
def test_predictions_are_in_original_pixels() -> None:
    torch.manual_seed(0)
    cfg = shapes_cfg()
    cfg["test_cfg"]["score_thr"] = 0.0
    model = build("detectors", cfg).eval()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(96, 128), num_classes=3)
    for meta in batch.metas:
        meta.ori_shape, meta.scale_factor = (48, 64), (2.0, 2.0)
    raw, rescaled = model.predict(batch, rescale=False), model.predict(batch, rescale=True)
    for r, o in zip(raw, rescaled):
        assert len(r) == len(o) > 0 and o.image_size == (48, 64)
        torch.testing.assert_close(o.boxes, r.boxes / 2.0)
