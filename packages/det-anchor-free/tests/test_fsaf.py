"""FSAF: TBLR coding, center-region assignment with shadowed classes, online feature selection, training."""

import copy

import torch

from det_common.assigners import CenterRegionAssigner
from det_common.coders import TBLRBBoxCoder
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Instances


def shapes_cfg() -> dict:
    return copy.deepcopy(load_config("fsaf_r18_fpn_shapes")["model"])


def test_tblr_coder_round_trip_and_clip() -> None:
    coder = TBLRBBoxCoder(normalizer=4.0)
    priors = torch.tensor([[0.0, 0.0, 8.0, 8.0], [16.0, 16.0, 48.0, 48.0]])
    boxes = torch.tensor([[-4.0, 2.0, 12.0, 6.0], [20.0, 10.0, 40.0, 60.0]])
    tblr = coder.encode(priors, boxes)
    # first prior: center (4, 4), side 8: top (4 - 2) / 8 / 4, bottom 2 / 8 / 4, left 8 / 8 / 4, right 8 / 8 / 4
    assert torch.allclose(tblr[0], torch.tensor([0.0625, 0.0625, 0.25, 0.25]))
    assert torch.allclose(coder.decode(priors, tblr), boxes)
    assert coder.decode(priors, tblr, max_shape=(50, 10))[:, 0::2].max() <= 10


def test_center_region_assignment() -> None:
    # cells of 8 px; a big box (class 0), a small one at its center (class 2) and a third (class 1)
    cells = torch.tensor([[x, y, x + 8.0, y + 8.0] for y in range(0, 64, 8) for x in range(0, 64, 8)])
    boxes = torch.tensor([[0.0, 0.0, 64.0, 64.0], [24.0, 24.0, 40.0, 40.0], [40.0, 0.0, 64.0, 24.0]])
    gt = Instances(boxes=boxes, labels=torch.tensor([0, 2, 1]))
    result = CenterRegionAssigner(pos_scale=0.2, neg_scale=0.5).assign(Instances(priors=cells), gt)
    grid = result.gt_inds.view(8, 8)
    # both cores hold the four central cells: the smaller object has priority, the big one's class is shadowed
    assert (grid[3:5, 3:5] == 2).all() and (result.labels.view(8, 8)[3:5, 3:5] == 2).all()
    shadowed = {(int(p), int(c)) for p, c in result.shadowed_labels}
    assert {(8 * y + x, 0) for y in (3, 4) for x in (3, 4)} <= shadowed
    # the ring between the 0.2 and 0.5 regions of the third box shadows class 1 without being positive
    ring = [p for p, c in shadowed if c == 1]
    assert ring and all(result.gt_inds[p] != 3 for p in ring)
    # the same class on both: those cells become negatives with that class ignored (foreground_dominate off)
    same = CenterRegionAssigner(0.2, 0.5).assign(Instances(priors=cells), Instances(boxes=boxes, labels=torch.tensor([0, 0, 1])))
    assert (same.gt_inds.view(8, 8)[3:5, 3:5] == 0).all() and (same.labels.view(8, 8)[3:5, 3:5] == -1).all()
    ignored = Instances(boxes=torch.tensor([[40.0, 0.0, 64.0, 24.0]]))
    with_ignored = CenterRegionAssigner(0.2, 0.2).assign(Instances(priors=cells), gt, ignored)
    assert (with_ignored.gt_inds == -1).any() and not (with_ignored.gt_inds == 3).any()


def test_feature_selection_keeps_one_level_per_object() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg()).train()
    batch = synthetic_batch(torch.Generator().manual_seed(1), num_images=2, size=(96, 128), num_classes=3)
    head = model.bbox_head
    outs = head(model.extract_feat(batch.images))
    priors = head.get_priors(outs)
    targets = head.get_targets(priors, outs, batch)
    # positives on several levels before selection; after it, each object keeps the positives of one level
    losses = head.loss_from_targets(outs, priors, targets, batch)
    assert targets.label_weights.shape[1] == 3 and targets.num_pos > float(losses["num_pos"]) * 2 > 0
    for value in losses.values():
        assert torch.isfinite(value)


def test_training_reduces_loss() -> None:
    torch.manual_seed(0)
    model = build("detectors", shapes_cfg())
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(80, 96), num_classes=3)
    history = train_steps(model, batch, steps=8, lr=0.01)
    assert {"loss_cls", "loss_bbox", "num_pos", "pos_recall", "total"} == set(history[0])
    assert sum(h["total"] for h in history[-2:]) < 0.8 * sum(h["total"] for h in history[:2])


def test_loss_without_ground_truth_is_finite() -> None:
    model = build("detectors", shapes_cfg()).train()
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 64), num_classes=3)
    batch.gt = [Instances.empty(), Instances.empty()]
    losses = model.loss(batch)
    assert losses["loss_bbox"].item() == 0.0 and torch.isfinite(losses["loss_cls"]) and losses["num_pos"] == 0
    (losses["loss_cls"] + losses["loss_bbox"]).backward()
