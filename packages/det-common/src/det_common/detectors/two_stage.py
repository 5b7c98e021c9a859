"""Two-stage detectors: backbone -> neck -> RPN (dense head) proposals -> RoI head detections."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from detcore.registry import build
from detcore.structures import Batch, Instances

from det_common.detectors.base import BaseDetector


class TwoStageDetector(BaseDetector):
    """Faster R-CNN style detector (MMDetection's TwoStageDetector).

    ``train_cfg`` / ``test_cfg`` hold ``rpn`` (anchor assignment / proposal generation at test),
    ``rpn_proposal`` (proposal generation while training) and ``rcnn`` (RoI sampling / detection
    post-processing) sections; each is handed to the head that uses it. Without ``rpn_head``
    the proposals come from the batch (``batch.proposals``, Fast R-CNN).
    """

    #: which head each section belongs to (their keys are checked against its declaration)
    cfg_routes = {
        "train_cfg.rpn": ("rpn_head", "dense_heads", "train_cfg"),
        "train_cfg.rpn_proposal": ("rpn_head", "dense_heads", "test_cfg"),
        "train_cfg.rcnn": ("roi_head", "roi_heads", "train_cfg"),
        "test_cfg.rpn": ("rpn_head", "dense_heads", "test_cfg"),
        "test_cfg.rcnn": ("roi_head", "roi_heads", "test_cfg"),
    }

    def __init__(
        self,
        backbone: dict[str, Any],
        neck: dict[str, Any] | None = None,
        rpn_head: dict[str, Any] | None = None,
        roi_head: dict[str, Any] | None = None,
        train_cfg: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, neck, train_cfg, test_cfg)
        train_cfg, test_cfg = self.train_cfg, self.test_cfg
        self.rpn_head = None
        if rpn_head is not None:
            self.rpn_head = build(
                "dense_heads",
                rpn_head,
                train_cfg=train_cfg.get("rpn"),
                test_cfg=test_cfg.get("rpn"),
                proposal_cfg=train_cfg.get("rpn_proposal"),
            )
        self.roi_head = None
        if roi_head is not None:
            self.roi_head = build("roi_heads", roi_head, train_cfg=train_cfg.get("rcnn"), test_cfg=test_cfg.get("rcnn"))

    @property
    def with_rpn(self) -> bool:
        return self.rpn_head is not None

    def proposals_of(self, batch: Batch) -> list[Instances]:
        """The batch's precomputed proposals (for detectors without an RPN)."""
        if batch.proposals is None:
            raise ValueError(
                f"{type(self).__name__} has no rpn_head, so it needs precomputed proposals in batch.proposals "
                "(add a proposal file to the dataset config)"
            )
        return batch.proposals

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        feats = self.extract_feat(batch.images)
        losses: dict[str, Tensor] = {}
        if self.rpn_head is not None:
            rpn_losses, proposals = self.rpn_head.loss_and_predict(feats, batch, rescale=False)
            losses.update(rpn_losses)
        else:
            proposals = self.proposals_of(batch)
        if self.roi_head is not None:
            losses.update(self.roi_head.loss(feats, proposals, batch))
        return losses

    def predict(self, batch: Batch, rescale: bool = True) -> list[Instances]:
        feats = self.extract_feat(batch.images)
        if self.roi_head is None:
            if self.rpn_head is None:
                raise ValueError(f"{type(self).__name__} has neither an rpn_head nor a roi_head to predict with")
            # an RPN-only detector (proposal metric, e.g. Cascade RPN): its proposals in original pixels
            return self.rpn_head.predict(feats, batch.metas, rescale=rescale)
        if self.rpn_head is not None and batch.proposals is None:
            proposals = self.rpn_head.predict(feats, batch.metas, rescale=False)
        else:
            proposals = self.proposals_of(batch)
        return self.roi_head.predict(feats, proposals, batch.metas, rescale=rescale)

    def forward_tensor(self, images: Tensor) -> Any:
        """Backbone+neck features and the RPN's raw per-level outputs (the RoI stage needs post-processing)."""
        feats = self.extract_feat(images)
        if self.rpn_head is None:
            return feats
        return feats, self.rpn_head(feats).to_tuple()

    def onnx_graphs(self, images: Tensor) -> list[Any]:
        """``detcore export onnx``'s pieces: features + RPN maps, RoI box branch, RoI mask branch
        (:mod:`det_common.detectors.onnx_graphs`)."""
        from det_common.detectors.onnx_graphs import two_stage_graphs

        return two_stage_graphs(self, images)

    def predict_with_graphs(self, run: Any, batch: Batch) -> list[Instances]:
        """Detections from the exported graphs, ``run(name, inputs)`` running one (``OnnxDetector.run``)."""
        from det_common.detectors.onnx_graphs import predict_with_graphs

        return predict_with_graphs(self, run, batch)
