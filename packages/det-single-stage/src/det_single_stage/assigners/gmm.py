"""A two-component Gaussian mixture over scalars, fitted by EM in torch (what PAA, Kim & Lee 2020, fits to the
losses of each object's candidate anchors).

Written in torch rather than taken from scikit-learn: the fit is tiny (at most ``topk`` x levels values per
object), runs on the device the losses are on without a round trip through numpy, and keeps scikit-learn and
SciPy (tens of MB) out of the family's dependencies. It follows ``sklearn.mixture.GaussianMixture``'s EM step
for step (float64; means, weights and precisions given; ``reg_covar`` 1e-6; stop when the mean log-likelihood
changes by less than ``tol``; ``max_iter`` 100), so a fit gives the labels and densities MMDetection's PAA gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: in one dimension "full", "diag" and "spherical" are the same model (a variance per component);
#: "tied" shares one variance between the components
COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
_LOG_2PI = math.log(2 * math.pi)


@dataclass
class GaussianMixture1D:
    """Weights, means and variances (each (K,)) of a mixture of 1-D Gaussians."""

    weights: Tensor
    means: Tensor
    variances: Tensor

    def weighted_log_prob(self, x: Tensor) -> Tensor:
        """(N, K): log(weight_k) + log N(x | mean_k, variance_k) of every value of ``x`` (N,)."""
        diff2 = (x[:, None] - self.means[None]) ** 2
        log_gauss = -0.5 * (_LOG_2PI + diff2 / self.variances[None] + torch.log(self.variances)[None])
        return log_gauss + torch.log(self.weights)[None]

    def predict(self, x: Tensor) -> Tensor:
        """(N,) the most likely component of each value."""
        return self.weighted_log_prob(x).argmax(dim=1)

    def score_samples(self, x: Tensor) -> Tensor:
        """(N,) log density of the mixture at each value."""
        return torch.logsumexp(self.weighted_log_prob(x), dim=1)


def fit_two_gaussians(
    x: Tensor,
    covariance_type: str = "diag",
    tol: float = 1e-3,
    max_iter: int = 100,
    reg_covar: float = 1e-6,
) -> GaussianMixture1D:
    """EM fit of two Gaussians to ``x`` (N >= 2 values), started as PAA starts it: means at min(x) and max(x),
    weights 1/2 each, variances 1. Component 0 is the low one (PAA: the low-loss, positive anchors)."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    if x.dim() != 1 or x.numel() < 2:
        raise ValueError(f"fit_two_gaussians needs a 1-D tensor of at least 2 values, got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    gmm = GaussianMixture1D(
        weights=x.new_tensor([0.5, 0.5]), means=torch.stack([x.min(), x.max()]), variances=x.new_ones(2)
    )
    eps = torch.finfo(torch.float64).eps
    lower_bound = -math.inf
    for _ in range(max_iter):
        weighted = gmm.weighted_log_prob(x)
        log_norm = torch.logsumexp(weighted, dim=1)
        resp = torch.exp(weighted - log_norm[:, None])  # E step
        nk = resp.sum(dim=0) + 10 * eps  # M step
        means = (resp * x[:, None]).sum(dim=0) / nk
        if covariance_type == "tied":
            shared = ((x * x).sum() - (nk * means * means).sum()) / nk.sum() + reg_covar
            variances = shared.expand(2).clone()
        else:
            variances = (resp * x[:, None] ** 2).sum(dim=0) / nk - means * means + reg_covar
        gmm = GaussianMixture1D(weights=nk / nk.sum(), means=means, variances=variances)
        previous, lower_bound = lower_bound, float(log_norm.mean())
        if abs(lower_bound - previous) < tol:
            break
    return gmm
