"""Probabilistic anchor assignment (Kim & Lee 2020, "Probabilistic Anchor Assignment with IoU Prediction for
Object Detection"): per object, the candidate anchors' losses are modelled as a mixture of a positive and a
negative Gaussian; the low-loss anchors of the positive component become its positives."""

from __future__ import annotations

import torch
from torch import Tensor

from det_single_stage.assigners.gmm import fit_two_gaussians


def paa_positives(
    losses: Tensor, gt_inds: Tensor, level_ids: Tensor, topk: int = 9, covariance_type: str = "diag"
) -> Tensor:
    """Which of N candidate anchors stay positive (N,) bool.

    ``losses`` (N,): each candidate's classification + box loss against its assigned object ``gt_inds`` (N,),
    ``level_ids`` (N,): its pyramid level. Per object, the ``topk`` lowest-loss candidates of every level are
    sorted by loss and fitted with two Gaussians (``fit_two_gaussians``); those of the low component up to
    the one where the mixture's density peaks are positive (MMDetection's separation scheme). Objects with
    fewer than two candidates keep none.
    """
    keep = torch.zeros_like(gt_inds, dtype=torch.bool)
    for gt in torch.unique(gt_inds):
        chosen = []
        for level in torch.unique(level_ids):
            members = torch.nonzero((gt_inds == gt) & (level_ids == level)).flatten()
            k = min(topk, members.numel())
            chosen.append(members[losses[members].topk(k, largest=False).indices])
        candidates = torch.cat(chosen)
        if candidates.numel() < 2:
            continue
        sorted_losses, order = losses[candidates].sort()
        candidates = candidates[order]
        gmm = fit_two_gaussians(sorted_losses, covariance_type)
        positive = gmm.predict(sorted_losses.double()) == 0
        if positive.any():
            density = gmm.score_samples(sorted_losses.double())[positive]
            last = int(density.argmax())
            keep[candidates[positive][: last + 1]] = True
    return keep
