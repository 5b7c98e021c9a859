import pytest
import torch
from torchvision.models.detection._utils import Matcher

from dc_helpers import random_boxes
from det_common.assigners import ATSSAssigner, MaxIoUAssigner
from det_common.bbox import bbox_overlaps
from detcore.structures import Instances


def test_max_iou_assigner_matches_torchvision_matcher():
    g = torch.Generator().manual_seed(0)
    for _trial in range(5):
        gts = random_boxes(6, generator=g)
        priors = random_boxes(200, generator=g)
        labels = torch.randint(0, 3, (6,), generator=g)
        result = MaxIoUAssigner(pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0.0).assign(
            Instances(priors=priors), Instances(boxes=gts, labels=labels))
        iou = bbox_overlaps(gts, priors)
        matches = Matcher(0.5, 0.4, allow_low_quality_matches=True)(iou)
        expected = torch.where(matches >= 0, matches + 1, torch.where(matches == -1, 0, -1))
        # torchvision gives a low-quality match its argmax gt, MMDetection the gt it is best for;
        # they only differ for priors that are some gt's best but whose argmax is another gt.
        best_for = iou == iou.max(dim=1, keepdim=True).values  # (G, N)
        conflict = torch.zeros(200, dtype=torch.bool)
        for i in range(6):
            conflict |= best_for[i] & (iou.argmax(0) != i)
        assert torch.equal(result.gt_inds[~conflict], expected[~conflict])
        assert torch.equal(result.gt_inds > 0, expected > 0)
        for p in torch.nonzero(conflict).flatten():
            assert best_for[result.gt_inds[p] - 1, p]
        pos = result.gt_inds > 0
        assert torch.equal(result.labels[pos], labels[result.gt_inds[pos] - 1])
        assert (result.labels[~pos] == -1).all()
        torch.testing.assert_close(result.max_overlaps, iou.max(0).values)


def test_max_iou_assigner_ranges_ignore_and_empty():
    gts = Instances(boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0]]), labels=torch.tensor([2]))
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 1.0],
                           [50.0, 50.0, 60.0, 60.0], [20.0, 0.0, 30.0, 10.0]])
    a = MaxIoUAssigner(0.7, (0.0, 0.3), match_low_quality=False).assign(Instances(priors=priors), gts)
    assert a.gt_inds.tolist() == [1, -1, 0, 0, 0] and a.labels.tolist() == [2, -1, -1, -1, -1]
    a = MaxIoUAssigner(0.7, (0.05, 0.3), match_low_quality=False).assign(Instances(priors=priors), gts)
    assert a.gt_inds.tolist() == [1, -1, 0, -1, -1]  # IoU 0 is below the range
    ignored = Instances(boxes=torch.tensor([[45.0, 45.0, 70.0, 70.0]]))
    a = MaxIoUAssigner(0.7, 0.3, ignore_iof_thr=0.5).assign(Instances(priors=priors), gts, ignored)
    assert a.gt_inds.tolist() == [1, -1, 0, -1, 0]
    empty = MaxIoUAssigner(0.5, 0.4).assign(Instances(priors=priors), Instances(boxes=torch.zeros(0, 4), labels=torch.zeros(0).long()))
    assert empty.gt_inds.tolist() == [0] * 5 and empty.num_gts == 0
    # gt_max_assign_all=False: only the first of the tied best priors
    tied = torch.tensor([[0.0, 0.0, 5.0, 5.0], [5.0, 5.0, 10.0, 10.0]])
    a = MaxIoUAssigner(0.5, 0.1, min_pos_iou=0.1, gt_max_assign_all=False).assign(Instances(priors=tied), gts)
    assert a.gt_inds.tolist() == [1, -1]
    a = MaxIoUAssigner(0.5, 0.1, min_pos_iou=0.1).assign(Instances(priors=tied), gts)
    assert a.gt_inds.tolist() == [1, 1]


def test_atss_assigner_by_hand():
    # two levels: a 4x4 grid of 8-px anchors (stride 8) and a 2x2 grid of 16-px anchors (stride 16)
    def grid(n, stride, size):
        c = (torch.arange(n) + 0.5) * stride
        yy, xx = torch.meshgrid(c, c, indexing="ij")
        ctr = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)
        return torch.cat([ctr - size / 2, ctr + size / 2], 1)

    priors = torch.cat([grid(4, 8, 8.0), grid(2, 16, 16.0)])
    gt = Instances(boxes=torch.tensor([[0.0, 0.0, 16.0, 16.0]]), labels=torch.tensor([1]))
    topk = 3
    result = ATSSAssigner(topk=topk).assign(Instances(priors=priors, level_ids=torch.tensor([0] * 16 + [1] * 4)), gt)
    # direct computation of the rule
    ious = bbox_overlaps(priors, gt.boxes)[:, 0]
    dist = ((priors[:, :2] + priors[:, 2:]) / 2 - torch.tensor([8.0, 8.0])).norm(dim=1)
    cand = torch.cat([dist[:16].topk(topk, largest=False).indices, dist[16:].topk(topk, largest=False).indices + 16])
    thr = ious[cand].mean() + ious[cand].std()
    ctr = (priors[cand, :2] + priors[cand, 2:]) / 2
    inside = (ctr > 0.01).all(1) & (ctr < 15.99).all(1)
    expected_pos = set(cand[(ious[cand] >= thr) & inside].tolist())
    assert set(torch.nonzero(result.gt_inds > 0).flatten().tolist()) == expected_pos and expected_pos
    assert (result.gt_inds >= 0).all() and (result.labels[result.gt_inds > 0] == 1).all()


def test_atss_assigner_picks_highest_iou_gt():
    # prior 0 passes both gts' thresholds (mean + std of IoUs [1, 0, 0] and [10/11, 0, 0]); it takes gt 0
    priors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [40.0, 40.0, 50.0, 50.0], [60.0, 60.0, 70.0, 70.0]])
    gts = Instances(boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 11.0]]), labels=torch.tensor([0, 1]))
    result = ATSSAssigner(topk=3).assign(Instances(priors=priors, level_ids=torch.zeros(3).long()), gts)
    assert result.gt_inds.tolist() == [1, 0, 0] and result.labels.tolist() == [0, -1, -1]
    torch.testing.assert_close(result.max_overlaps, torch.tensor([1.0, 0.0, 0.0]))
    swapped = Instances(boxes=gts.boxes.flip(0), labels=gts.labels.flip(0))
    assert ATSSAssigner(topk=3).assign(Instances(priors=priors, level_ids=torch.zeros(3).long()), swapped).gt_inds.tolist() == [2, 0, 0]


def test_atss_assigner_needs_level_ids_and_accepts_unsorted_levels():
    g = torch.Generator().manual_seed(1)
    priors = random_boxes(60, generator=g)
    gt = Instances(boxes=random_boxes(3, generator=g), labels=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="level_ids"):
        ATSSAssigner(topk=4).assign(Instances(priors=priors), gt)
    level_ids = torch.tensor([0] * 40 + [1] * 20)
    sorted_result = ATSSAssigner(topk=4).assign(Instances(priors=priors, level_ids=level_ids), gt)
    assert (sorted_result.gt_inds > 0).any()
    perm = torch.randperm(60, generator=g)  # levels interleaved: the same assignment, permuted
    shuffled = ATSSAssigner(topk=4).assign(Instances(priors=priors[perm], level_ids=level_ids[perm]), gt)
    assert torch.equal(shuffled.gt_inds, sorted_result.gt_inds[perm])
