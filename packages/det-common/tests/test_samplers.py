import pytest
import torch

from det_common.samplers import OHEMSampler, PseudoSampler, RandomSampler
from detcore.interfaces import AssignResult
from detcore.structures import Instances


def _assign(gt_inds, num_gts=2):
    gt_inds = torch.tensor(gt_inds)
    labels = torch.where(gt_inds > 0, gt_inds + 10, torch.full_like(gt_inds, -1))
    return AssignResult(num_gts, gt_inds, torch.rand(len(gt_inds)), labels)


GT = Instances(boxes=torch.tensor([[0.0, 0.0, 5.0, 5.0], [10.0, 10.0, 20.0, 20.0]]), labels=torch.tensor([11, 12]))


def test_random_sampler_counts_and_targets():
    torch.manual_seed(0)
    gt_inds = [1] * 10 + [2] * 10 + [0] * 100 + [-1] * 5
    priors = torch.rand(125, 4) * 50
    assign = _assign(gt_inds)
    res = RandomSampler(num=32, pos_fraction=0.25, add_gt_as_proposals=False).sample(assign, Instances(priors=priors), GT)
    assert res.pos_inds.numel() == 8 and res.neg_inds.numel() == 24
    assert (res.pos_inds < 20).all() and ((res.neg_inds >= 20) & (res.neg_inds < 120)).all()
    torch.testing.assert_close(res.pos_priors, priors[res.pos_inds])
    torch.testing.assert_close(res.pos_gt_boxes, GT.boxes[res.pos_assigned_gt_inds])
    assert torch.equal(res.pos_gt_labels, torch.tensor(gt_inds)[res.pos_inds] + 10)
    assert torch.equal(assign.gt_inds, torch.tensor(gt_inds))  # caller's result untouched


def test_random_sampler_adds_gts_and_neg_pos_ub():
    torch.manual_seed(0)
    gt_inds = [1, 0, 0, 0, 0, 0, 0, 0]
    res = RandomSampler(num=8, pos_fraction=0.5, neg_pos_ub=2).sample(_assign(gt_inds), Instances(priors=torch.rand(8, 4)), GT)
    # 2 gts prepended + 1 positive = 3 positives; negatives capped at 2 * 3 = 6 but only 5 remain in num
    assert res.pos_inds.tolist() == [0, 1, 2] and res.pos_is_gt.tolist() == [True, True, False]
    assert res.neg_inds.numel() == 5 and (res.neg_inds >= 3).all()
    torch.testing.assert_close(res.pos_priors[:2], GT.boxes)
    assert res.pos_gt_labels.tolist() == [11, 12, 11]
    res = RandomSampler(num=100, pos_fraction=0.5, neg_pos_ub=1, add_gt_as_proposals=False).sample(
        _assign([0] * 50), Instances(priors=torch.rand(50, 4)), GT)
    assert res.pos_inds.numel() == 0 and res.neg_inds.numel() == 1  # max(1, 0 positives) * 1


def test_pseudo_sampler_takes_everything():
    res = PseudoSampler().sample(_assign([1, 0, -1, 2, 0]), Instances(priors=torch.rand(5, 4)), GT)
    assert res.pos_inds.tolist() == [0, 3] and res.neg_inds.tolist() == [1, 4]
    assert res.pos_assigned_gt_inds.tolist() == [0, 1] and not res.pos_is_gt.any()


def test_ohem_picks_largest_losses():
    gt_inds = [1] * 6 + [0] * 20
    priors = torch.arange(26, dtype=torch.float32)[:, None].repeat(1, 4)
    seen = {}

    def loss_fn(boxes, labels):
        seen.setdefault("labels", []).append(labels.clone())
        return boxes[:, 0]  # loss grows with the prior index

    sampler = OHEMSampler(num=8, pos_fraction=0.25, add_gt_as_proposals=False)
    res = sampler.sample(_assign(gt_inds), Instances(priors=priors), GT, loss_fn=loss_fn, background_label=3)
    assert res.pos_inds.tolist() == [4, 5] and res.neg_inds.tolist() == list(range(20, 26))
    assert (seen["labels"][0] == 11).all() and (seen["labels"][1] == 3).all()
    with pytest.raises(ValueError, match="loss_fn"):
        sampler.sample(_assign(gt_inds), Instances(priors=priors), GT)
