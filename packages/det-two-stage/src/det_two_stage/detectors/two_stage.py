"""Whole detectors of this family: the RPN alone, Fast R-CNN (given proposals), Faster and Mask R-CNN."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from detcore.registry import build
from detcore.structures import Batch, Instances

from det_common.detectors.base import BaseDetector
from det_common.detectors.two_stage import TwoStageDetector


class RPN(BaseDetector):
    """Region Proposal Network as a detector: predicts class-agnostic proposals (evaluated by recall).

    Its head is ``rpn_head`` (MMDetection 2's layout); checkpoints in MMDetection 3's layout, where
    the RPN detector's head is ``bbox_head``, load too (``bbox_head.*`` keys are read as ``rpn_head.*``).
    """

    #: the ``rpn`` sections are the head's (their keys are checked against its declaration)
    cfg_routes = {"train_cfg.rpn": ("rpn_head", "dense_heads", "train_cfg"),
                  "test_cfg.rpn": ("rpn_head", "dense_heads", "test_cfg")}

    def __init__(
        self,
        backbone: dict[str, Any],
        rpn_head: dict[str, Any],
        neck: dict[str, Any] | None = None,
        train_cfg: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, neck, train_cfg, test_cfg)
        self.rpn_head = build(
            "dense_heads", rpn_head, train_cfg=self.train_cfg.get("rpn"), test_cfg=self.test_cfg.get("rpn")
        )
        self._register_load_state_dict_pre_hook(_read_mmdet3_rpn_layout)

    @staticmethod
    def adapt_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """MMDetection 3's layout read as ours: ``bbox_head.*`` keys become ``rpn_head.*`` (detcore's
        checkpoint loading calls this before comparing keys; ``load_state_dict`` does it through a pre-hook)."""
        renamed = dict(state)
        _read_mmdet3_rpn_layout(renamed, "")
        return renamed

    def loss(self, batch: Batch) -> dict[str, Tensor]:
        return self.rpn_head.loss(self.extract_feat(batch.images), batch)

    def predict(self, batch: Batch, rescale: bool = True) -> list[Instances]:
        return self.rpn_head.predict(self.extract_feat(batch.images), batch.metas, rescale=rescale)

    def forward_tensor(self, images: Tensor) -> Any:
        """The RPN's raw per-level (objectness, deltas) as plain lists (for export and parity checks)."""
        return self.rpn_head(self.extract_feat(images)).to_tuple()


def _read_mmdet3_rpn_layout(state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """Load-state-dict pre-hook: MMDetection 3's ``bbox_head.*`` keys of an RPN detector become ``rpn_head.*``."""
    old = prefix + "bbox_head."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "rpn_head." + key[len(old):]] = state_dict.pop(key)


class FasterRCNN(TwoStageDetector):
    """Faster R-CNN (Ren et al. 2015): an RPN proposes, an RoI head classifies and refines."""

    def __init__(
        self,
        backbone: dict[str, Any],
        rpn_head: dict[str, Any],
        roi_head: dict[str, Any],
        neck: dict[str, Any] | None = None,
        train_cfg: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, neck, rpn_head, roi_head, train_cfg, test_cfg)


class FastRCNN(TwoStageDetector):
    """Fast R-CNN (Girshick 2015): an RoI head over precomputed proposals (``batch.proposals``)."""

    def __init__(
        self,
        backbone: dict[str, Any],
        roi_head: dict[str, Any],
        neck: dict[str, Any] | None = None,
        train_cfg: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, neck, None, roi_head, train_cfg, test_cfg)


class MaskRCNN(FasterRCNN):
    """Mask R-CNN (He et al. 2017): Faster R-CNN whose RoI head also predicts a mask per detection
    (the mask branch is configured in ``roi_head``)."""
