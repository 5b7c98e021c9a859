"""The set-prediction kit: match costs (a kind of their own), the Hungarian assigner, positional encodings,
the ChannelMapper neck."""

import itertools
import math

import pytest
import torch

from det_transformer.layers.positional_encoding import LearnedPositionalEncoding, SinePositionalEncoding
from detcore.registry import build
from detcore.registry import components
from detcore.structures import Instances


def test_match_costs_are_their_own_kind():
    names = {spec.name for spec in components("match_costs")}
    assert {"ClassificationCost", "FocalLossCost", "BBoxL1Cost", "IoUCost"} <= names


def _pred_and_gt():
    pred = Instances((100, 200), scores=torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.5]]),
                     boxes=torch.tensor([[0.0, 0.0, 50.0, 50.0], [100.0, 50.0, 200.0, 100.0], [0.0, 0.0, 200.0, 100.0]]))
    gt = Instances((100, 200), boxes=torch.tensor([[100.0, 50.0, 200.0, 100.0], [0.0, 0.0, 40.0, 50.0]]),
                   labels=torch.tensor([1, 0]))
    return pred, gt


def test_costs_by_hand():
    pred, gt = _pred_and_gt()
    cls = build("match_costs", {"type": "ClassificationCost", "weight": 2.0})(pred, gt)
    probs = pred.scores.softmax(-1)
    assert torch.allclose(cls, -2.0 * probs[:, [1, 0]])
    l1 = build("match_costs", {"type": "BBoxL1Cost", "box_format": "xyxy"})(pred, gt)
    # prediction 0 vs gt 1: only x2 differs, by 10 px of a 200 px wide image
    assert math.isclose(float(l1[0, 1]), 10 / 200, rel_tol=1e-6) and float(l1[1, 0]) == 0.0
    xywh = build("match_costs", {"type": "BBoxL1Cost", "box_format": "xywh"})(pred, gt)
    assert math.isclose(float(xywh[0, 1]), 5 / 200 + 10 / 200, rel_tol=1e-6)
    iou = build("match_costs", {"type": "IoUCost", "iou_mode": "iou"})(pred, gt)
    assert math.isclose(float(iou[0, 1]), -(40 * 50) / (50 * 50), rel_tol=1e-6) and float(iou[1, 0]) == -1.0
    giou = build("match_costs", {"type": "IoUCost", "iou_mode": "giou"})(pred, gt)
    # disjoint boxes: IoU 0, enclosing box 200 x 100 minus the union 2500 + 5000
    assert math.isclose(float(giou[0, 0]), (20000 - 7500) / 20000, rel_tol=1e-6)
    focal = build("match_costs", {"type": "FocalLossCost", "weight": 1.0})(pred, gt)
    p = pred.scores.sigmoid()[2, 1]
    expected = -math.log(p) * 0.25 * (1 - p) ** 2 + math.log(1 - p) * 0.75 * p ** 2
    assert math.isclose(float(focal[2, 0]), float(expected), rel_tol=1e-5)


def test_a_cost_names_the_missing_prediction_field():
    _, gt = _pred_and_gt()
    with pytest.raises(KeyError, match="IoUCost needs predictions with `boxes`"):
        build("match_costs", {"type": "IoUCost"})(Instances((10, 10), scores=torch.zeros(2, 2)), gt)


def test_hungarian_assignment_is_the_cheapest_one_to_one_matching():
    assigner = build("assigners", {"type": "HungarianAssigner", "match_costs": [
        {"type": "ClassificationCost", "weight": 1.0}, {"type": "BBoxL1Cost", "weight": 5.0},
        {"type": "IoUCost", "iou_mode": "giou", "weight": 2.0}]})
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(6, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + 10 + torch.rand(6, 2, generator=gen) * 50], 1)
    pred = Instances((160, 160), scores=torch.randn(6, 3, generator=gen), boxes=boxes)
    gt = Instances((160, 160), boxes=boxes[[4, 1, 2]] + 1.0, labels=torch.tensor([0, 2, 1]))
    result = assigner.assign(pred, gt)
    cost = sum(c(pred, gt) for c in assigner.match_costs)
    best = min(itertools.permutations(range(6), 3), key=lambda rows: sum(float(cost[r, j]) for j, r in enumerate(rows)))
    expected = torch.zeros(6, dtype=torch.long)
    expected[list(best)] = torch.arange(1, 4)
    assert torch.equal(result.gt_inds, expected)
    assert torch.equal(result.labels[list(best)], gt.labels)


def test_hungarian_edge_cases():
    assigner = build("assigners", {"type": "HungarianAssigner", "match_costs": [{"type": "BBoxL1Cost"}]})
    pred = Instances((50, 50), boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]))
    empty = assigner.assign(pred, Instances((50, 50), boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long)))
    assert empty.num_gts == 0 and torch.equal(empty.gt_inds, torch.zeros(2, dtype=torch.long))
    # more ground truths than predictions: each prediction takes its cheapest one, the rest stay unmatched
    gt = Instances((50, 50), boxes=torch.tensor([[40.0, 40.0, 50.0, 50.0], [21.0, 20.0, 30.0, 30.0], [0.0, 1.0, 10.0, 10.0]]),
                   labels=torch.tensor([0, 1, 2]))
    crowded = assigner.assign(pred, gt)
    assert crowded.gt_inds.tolist() == [3, 2] and crowded.labels.tolist() == [2, 1]
    bad = Instances((50, 50), boxes=torch.tensor([[float("nan"), 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]))
    with pytest.raises(FloatingPointError, match="NaN/inf"):
        assigner.assign(bad, gt)


def test_sine_encoding_counts_valid_cells_only():
    encoding = SinePositionalEncoding(num_feats=8, normalize=True)
    feat = torch.zeros(1, 16, 4, 6)
    plain = encoding(None, like=feat)
    assert plain.shape == (1, 16, 4, 6)
    mask = torch.zeros(1, 5, 8, dtype=torch.bool)
    mask[:, 4:, :] = True
    mask[:, :, 6:] = True
    padded = encoding(mask)
    assert torch.allclose(padded[..., :4, :6], plain, atol=1e-6)
    # first channel: sine of the normalised row position (2 pi at the last valid row)
    assert torch.allclose(plain[0, 0, :, 0], torch.sin(torch.arange(1, 5) / (4 + 1e-6) * 2 * math.pi), atol=1e-6)


def test_learned_encoding_shape_and_limit():
    encoding = LearnedPositionalEncoding(num_feats=4, row_num_embed=5, col_num_embed=6)
    pos = encoding(torch.zeros(2, 3, 6, dtype=torch.bool))
    assert pos.shape == (2, 8, 3, 6)
    assert torch.equal(pos[0, :4, 1, 2], encoding.col_embed.weight[2])
    with pytest.raises(ValueError, match="row_num_embed"):
        encoding(torch.zeros(1, 7, 6, dtype=torch.bool))


def test_channel_mapper_adds_strided_levels():
    neck = build("necks", {"type": "ChannelMapper", "in_channels": [8, 16], "out_channels": 4, "num_outs": 4,
                           "norm_cfg": {"type": "GN", "num_groups": 2}})
    outs = neck([torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8)])
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert "extra_convs.1.gn.weight" in neck.state_dict()
