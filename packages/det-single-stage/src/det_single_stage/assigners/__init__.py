"""Assignment helpers of the anchor-based single-stage family (PAA's Gaussian-mixture split)."""

from det_single_stage.assigners.gmm import COVARIANCE_TYPES, GaussianMixture1D, fit_two_gaussians
from det_single_stage.assigners.paa import paa_positives

__all__ = ["COVARIANCE_TYPES", "GaussianMixture1D", "fit_two_gaussians", "paa_positives"]
