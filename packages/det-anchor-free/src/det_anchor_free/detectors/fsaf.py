"""FSAF (Zhu et al. 2019, "Feature Selective Anchor-Free Module for Single-Shot Object Detection"): ResNet-FPN
features and an FSAFHead."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class FSAF(SingleStageDetector):
    """A SingleStageDetector under FSAF's config name; the anchor-free branch and its feature selection live in
    FSAFHead."""
