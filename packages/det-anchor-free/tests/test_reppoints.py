"""RepPoints: the point assigner, the three point-to-box transforms, the deformable taps following the initial
points, the configs of `001`, and training on a synthetic batch."""

from __future__ import annotations

import copy

import pytest
import torch

from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Instances

SHAPES = "reppoints_moment_r18_fpn_gn-neck+head_shapes"


def shapes_cfg() -> dict:
    return copy.deepcopy(load_config(SHAPES)["model"])


def test_point_assigner_picks_the_nearest_points_on_the_level_of_the_box_size() -> None:
    assigner = build("assigners", {"type": "PointAssigner", "scale": 4, "pos_num": 1})
    points = [[x * s, y * s, s, s] for s in (8, 16) for y in range(64 // s) for x in range(64 // s)]
    pred = Instances((64, 64), priors=torch.tensor(points, dtype=torch.float32))
    # 32 x 32 -> level int(log2(32 / 4)) = 3 (stride 8); 64 x 64 -> level 4 (stride 16); a second 32-box whose
    # nearest point is the first one's, but farther: the first keeps it
    gt = Instances(boxes=torch.tensor([[8.0, 8.0, 40.0, 40.0], [0.0, 0.0, 64.0, 64.0], [10.0, 10.0, 42.0, 42.0]]),
                   labels=torch.tensor([0, 1, 2]))
    result = assigner.assign(pred, gt)
    assert result.gt_inds[3 * 8 + 3].item() == 1  # (24, 24) is box 0's center
    assert result.gt_inds[64 + 2 * 4 + 2].item() == 2  # (32, 32) on stride 16
    assert int((result.gt_inds > 0).sum()) == 2 and result.labels[3 * 8 + 3].item() == 0


@pytest.mark.parametrize("method", ["moment", "minmax", "partial_minmax"])
def test_points_to_boxes(method: str) -> None:
    head = build("dense_heads", {**shapes_cfg()["bbox_head"], "transform_method": method})
    ys = torch.tensor([-2.0, 0.0, 2.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0])
    xs = torch.tensor([0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 6.0])
    pts = torch.stack([ys, xs], dim=1).reshape(1, 18)
    box = head.points_to_boxes(pts)[0]
    if method == "minmax":
        torch.testing.assert_close(box, torch.tensor([-1.0, -2.0, 6.0, 4.0]))
    elif method == "partial_minmax":  # the first four points only
        torch.testing.assert_close(box, torch.tensor([-1.0, -2.0, 1.0, 2.0]))
    else:  # mean +- std (moment_transfer starts at 0)
        torch.testing.assert_close(box, torch.cat([torch.stack([xs.mean(), ys.mean()]) - torch.stack([xs.std(), ys.std()]),
                                                   torch.stack([xs.mean(), ys.mean()]) + torch.stack([xs.std(), ys.std()])]))


def test_classification_reads_features_at_the_initial_points() -> None:
    torch.manual_seed(0)
    head = build("dense_heads", shapes_cfg()["bbox_head"]).eval()
    x = torch.randn(1, 128, 8, 8)
    cls_score, pts_init, pts_refine = head.forward_single(x, 0)
    assert cls_score.shape == (1, 3, 8, 8) and pts_init.shape == pts_refine.shape == (1, 18, 8, 8)
    with torch.no_grad():
        head.reppoints_pts_init_out.bias.add_(1.5)  # move every initial point: other sampled features
    assert not torch.allclose(head.forward_single(x, 0)[0], cls_score)


def test_gn_dcn_and_resnext_rows_build() -> None:
    gn = load_config("reppoints_moment_r50_fpn_gn-neck+head_2x_coco")
    assert gn["model"]["neck"]["norm_cfg"]["type"] == "GN" and gn["runner"]["max_epochs"] == 24
    assert gn["optimizer"]["lr"] == 0.01
    x101 = load_config("reppoints_moment_x101_fpn_dconv_c3-c5_gn-neck+head_2x_coco")["model"]["backbone"]
    assert x101["type"] == "ResNeXt" and x101["stage_with_dcn"] == [False, True, True, True]
    assert load_config("reppoints_partial_minmax_r50_fpn_gn-neck+head_1x_coco")["model"]["bbox_head"][
        "transform_method"] == "partial_minmax"


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg())
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    history = train_steps(model, batch, steps=8, lr=0.01)
    assert set(history[0]) == {"loss_cls", "loss_pts_init", "loss_pts_refine", "total"}
    assert sum(h["total"] for h in history[-2:]) < 0.8 * sum(h["total"] for h in history[:2])


def test_grid_points_span_the_regressed_box() -> None:
    head = build("dense_heads", {**shapes_cfg()["bbox_head"], "use_grid_points": True, "transform_method": "minmax"})
    assert head.reppoints_pts_init_out.out_channels == 4
    boxes = torch.tensor([-2.0, -2.0, 2.0, 2.0]).view(1, 4, 1, 1)
    # shift the centre by half a width right, double the height
    deltas = torch.tensor([0.5, 0.0, 0.0, float(torch.log(torch.tensor(2.0)))]).view(1, 4, 1, 1)
    grid, box = head.grid_from_regression(deltas, boxes)
    torch.testing.assert_close(box.flatten(), torch.tensor([0.0, -4.0, 4.0, 4.0]))
    pairs = grid.view(9, 2)  # (y, x), row-major over the 3 x 3 grid
    torch.testing.assert_close(pairs[:3], torch.tensor([[-4.0, 0.0], [-4.0, 2.0], [-4.0, 4.0]]))
    torch.testing.assert_close(pairs[8], torch.tensor([4.0, 4.0]))
    torch.testing.assert_close(head.points_to_boxes(grid).flatten(), box.flatten())


@pytest.mark.parametrize("config", ["bbox_r50_grid_fpn_gn-neck+head_1x_coco", "bbox_r50_grid_center_fpn_gn-neck+head_1x_coco"])
def test_bbox_rows_train(config: str) -> None:
    """The BBox rows (anchor-like squares assigned by max IoU, or points by PointAssigner) give finite losses
    with gradients into both box regressions."""
    torch.manual_seed(0)
    cfg = load_config(config)["model"]
    head_cfg = {**cfg["bbox_head"], "train_cfg": cfg["train_cfg"], "num_classes": 3, "in_channels": 32,
                "feat_channels": 32, "point_feat_channels": 32, "stacked_convs": 1, "point_strides": [8, 16, 32],
                "norm_cfg": {"type": "GN", "num_groups": 8, "requires_grad": True}}
    model = build("detectors", {**shapes_cfg(), "bbox_head": head_cfg,
                                "neck": {**shapes_cfg()["neck"], "out_channels": 32, "num_outs": 3,
                                         "norm_cfg": {"type": "GN", "num_groups": 8, "requires_grad": True}}}).train()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    losses = model.loss(batch)
    assert set(losses) == {"loss_cls", "loss_pts_init", "loss_pts_refine"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_pts_init"] > 0
    sum(losses.values()).backward()
    head = model.bbox_head
    assert head.reppoints_pts_init_out.weight.grad.abs().sum() > 0
    assert head.reppoints_pts_refine_out.weight.grad.abs().sum() > 0
