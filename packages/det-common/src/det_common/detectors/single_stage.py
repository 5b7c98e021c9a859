"""SingleStageDetector: backbone -> neck -> one dense head (RetinaNet, FCOS, ATSS, ...)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from det_common.detectors.base import BaseDetector
from detcore.registry import build
from detcore.structures import Batch, Instances


class SingleStageDetector(BaseDetector):
    """A dense head predicts boxes directly from every location of the (neck) features.

    ``train_cfg`` / ``test_cfg`` are handed to the head (assigner, sampler / nms_pre,
    score_thr, nms, max_per_img), as in MMDetection v2.
    """

    #: ``train_cfg`` / ``test_cfg`` are the head's (their keys are checked against its declaration)
    cfg_routes = {"train_cfg": ("bbox_head", "dense_heads", "train_cfg"),
                  "test_cfg": ("bbox_head", "dense_heads", "test_cfg")}

    def __init__(
        self,
        backbone: Mapping[str, Any],
        bbox_head: Mapping[str, Any],
        neck: Mapping[str, Any] | None = None,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, neck, train_cfg, test_cfg)
        self.bbox_head = build("dense_heads", bbox_head, train_cfg=train_cfg, test_cfg=test_cfg)

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return self.bbox_head.loss(self.extract_feat(batch.images), batch)

    def predict(self, batch: Batch, rescale: bool = True) -> list[Instances]:
        return self.bbox_head.predict(self.extract_feat(batch.images), batch.metas, rescale=rescale)

    def forward_tensor(self, images: Tensor) -> Any:
        """The head's raw per-level outputs as plain tuples of lists (for export and parity checks)."""
        return self.bbox_head(self.extract_feat(images)).to_tuple()
