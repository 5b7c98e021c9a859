"""Sparse R-CNN (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with Learnable Proposals")."""

from __future__ import annotations

from det_common.detectors.two_stage import TwoStageDetector


class SparseRCNN(TwoStageDetector):
    """Backbone -> FPN -> learned proposals (``EmbeddingRPNHead``: boxes and features, no loss) -> iterative
    ``SparseRoIHead`` trained with one-to-one (Hungarian) matching, so inference needs no NMS. The two-stage
    detector's flow (``train_cfg.rcnn`` / ``test_cfg.rcnn`` to the RoI head) is used unchanged."""
