"""PAA: the Gaussian-mixture split, training on a synthetic batch, an image without ground truth, score voting."""

import pytest
import torch
from ss_helpers import assert_training_reduces_loss, shapes_model, tiny_batch, without_ground_truth

from det_single_stage.assigners import fit_two_gaussians, paa_positives
from detcore.structures import Instances


def test_gmm_recovers_two_clusters():
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([0.2 + 0.05 * torch.randn(30, generator=gen), 2.0 + 0.3 * torch.randn(10, generator=gen)])
    gmm = fit_two_gaussians(x)
    # well separated: each component is its cluster's sample mean and variance
    assert torch.allclose(gmm.means, torch.stack([x[:30].mean(), x[30:].mean()]).double(), atol=1e-4)
    assert torch.allclose(gmm.variances, torch.stack([x[:30].var(unbiased=False), x[30:].var(unbiased=False)]).double(),
                          atol=1e-4)
    assert torch.allclose(gmm.weights, torch.tensor([0.75, 0.25], dtype=torch.float64), atol=1e-3)
    assert (gmm.predict(x.double()) == torch.cat([torch.zeros(30), torch.ones(10)]).long()).all()
    tied = fit_two_gaussians(x, covariance_type="tied")
    assert torch.allclose(tied.variances[0], tied.variances[1])
    with pytest.raises(ValueError, match="covariance_type"):
        fit_two_gaussians(x, covariance_type="banana")


def test_gmm_is_at_an_em_fixed_point():
    """One more EM step from the fit moves the means by less than the convergence tolerance allows."""
    x = torch.tensor([0.1, 0.15, 0.3, 0.35, 0.5, 1.2, 1.9, 2.4, 3.0])
    gmm = fit_two_gaussians(x, tol=1e-10, max_iter=1000)
    resp = torch.softmax(gmm.weighted_log_prob(x.double()), dim=1)
    means = (resp * x.double()[:, None]).sum(0) / resp.sum(0)
    assert torch.allclose(means, gmm.means, atol=1e-6)


def test_gmm_matches_scikit_learn():
    """Reference values from sklearn.mixture.GaussianMixture 1.x (diag, weights_init [.5, .5], means_init
    [min, max], precisions_init 1), computed once outside the test suite."""
    x = torch.tensor([0.31, 0.35, 0.42, 0.44, 0.52, 0.61, 0.9, 1.3, 1.45, 2.2, 2.5, 3.1], dtype=torch.float64)
    gmm = fit_two_gaussians(x)
    assert gmm.predict(x).tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    sklearn_scores = [-0.676086, -0.576396, -0.433368, -0.399844, -0.298325, -0.246251, -0.518279, -1.751543,
                      -2.113665, -1.589897, -1.595659, -2.35155]
    assert torch.allclose(gmm.score_samples(x), torch.tensor(sklearn_scores, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(gmm.means, torch.tensor([0.63378156, 2.34323297], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(gmm.variances, torch.tensor([0.12211079, 0.36256706], dtype=torch.float64), atol=1e-6)


def test_paa_positives_keep_the_low_loss_mode_per_object():
    low, high = [0.1, 0.12, 0.15, 0.2], [3.0, 3.2, 3.5, 4.0, 4.1]
    losses = torch.tensor(low + high + low + high)
    gt_inds = torch.tensor([0] * 9 + [1] * 9)
    level_ids = torch.zeros(18, dtype=torch.long)
    keep = paa_positives(losses, gt_inds, level_ids, topk=9)
    # the low component's candidates up to its density peak (0.15, the middle of 0.1-0.2) stay positive
    expected = torch.tensor(([True] * 3 + [False] * 6) * 2)
    assert (keep == expected).all()
    # an object with a single candidate keeps none; topk limits the candidates per level
    assert not paa_positives(torch.tensor([0.5]), torch.tensor([0]), torch.tensor([0])).any()
    assert int(paa_positives(losses, gt_inds, level_ids, topk=2).sum()) <= 4


def test_training_reduces_loss():
    history = assert_training_reduces_loss(shapes_model("paa_r18_fpn_shapes"), tiny_batch())
    assert {"loss_cls", "loss_bbox", "loss_iou"} <= set(history[0])


def test_image_without_ground_truth_trains():
    """No ground truth anywhere: no candidate reaches the mixture; losses finite, box losses zero, gradients flow."""
    model = shapes_model("paa_r18_fpn_shapes").train()
    losses = model.loss(without_ground_truth(tiny_batch()))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_bbox"].item() == 0.0 and losses["loss_iou"].item() == 0.0
    sum(losses.values()).backward()
    assert model.bbox_head.atss_cls.weight.grad is not None


def test_score_voting_averages_overlapping_candidates():
    from det_single_stage.heads.paa_head import score_voting

    dets = Instances((100, 100), boxes=torch.tensor([[10.0, 10.0, 50.0, 50.0]]), scores=torch.tensor([0.9]),
                     labels=torch.tensor([0]))
    boxes = torch.tensor([[10.0, 10.0, 50.0, 50.0], [12.0, 12.0, 52.0, 52.0], [60.0, 60.0, 90.0, 90.0]])
    scores = torch.tensor([[0.9, 0.0], [0.9, 0.0], [0.8, 0.0]])
    voted = score_voting(dets, boxes, scores, 0.05)
    # the far box (IoU 0) does not vote; the shifted one (IoU 1444 / 1756) weighs exp(-(1 - IoU)^2 / 0.025)
    iou = 1444 / 1756
    w = 0.9 * torch.exp(torch.tensor(-((1 - iou) ** 2) / 0.025))
    shift = float(2 * w / (0.9 + w))
    assert torch.allclose(voted, torch.tensor([[10.0, 10.0, 50.0, 50.0]]) + shift, atol=1e-4)
