"""Sparse R-CNN (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with Learnable Proposals")."""

from __future__ import annotations

from torch import Tensor

from det_common.detectors.two_stage import TwoStageDetector


class SparseRCNN(TwoStageDetector):
    """Backbone -> FPN -> learned proposals (``EmbeddingRPNHead``: boxes and features, no loss) -> iterative
    ``SparseRoIHead`` trained with one-to-one (Hungarian) matching, so inference needs no NMS. The two-stage
    detector's flow (``train_cfg.rcnn`` / ``test_cfg.rcnn`` to the RoI head) is used unchanged."""

    def forward_tensor(self, images: Tensor) -> tuple[tuple[Tensor, ...], tuple[Tensor, Tensor]]:
        """The FPN features and the learned proposals (normalised boxes, features); the stages need the image sizes."""
        feats = self.extract_feat(images)
        return feats, self.rpn_head(feats)
