"""The standard second stage (Faster / Mask R-CNN): the one-stage case of the stage-indexed RoI head."""

from __future__ import annotations

from typing import Any

from detcore.registry import build

from det_common.heads.roi.base_roi_head import BaseRoIHead


class StandardRoIHead(BaseRoIHead):
    """One RoI extractor + box head, optionally a mask head with its own extractor (or the box one when shared).

    MMDetection layout: ``roi_head.bbox_head.*``, ``roi_head.mask_head.*``. ``train_cfg`` holds
    ``assigner``, ``sampler`` (and ``pos_weight``, ``mask_size`` for masks); ``test_cfg`` holds
    ``score_thr``, ``nms``, ``max_per_img`` (and ``mask_thr_binary``).
    """

    def __init__(
        self,
        bbox_roi_extractor: dict[str, Any] | None = None,
        bbox_head: dict[str, Any] | None = None,
        mask_roi_extractor: dict[str, Any] | None = None,
        mask_head: dict[str, Any] | None = None,
        share_roi_extractor: bool = False,
        train_cfg: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(1, [1.0], [train_cfg] if train_cfg else None, test_cfg)
        if bbox_head is None:
            raise ValueError("StandardRoIHead needs a bbox_head")
        self.train_cfg = dict(train_cfg or {})
        self.bbox_roi_extractor = build("roi_extractors", bbox_roi_extractor)
        self.bbox_head = build("bbox_heads", bbox_head)
        self.mask_head = build("mask_heads", mask_head) if mask_head is not None else None
        self.share_roi_extractor = share_roi_extractor or (self.mask_head is not None and mask_roi_extractor is None)
        self.mask_roi_extractor = None
        if self.mask_head is not None and not self.share_roi_extractor:
            self.mask_roi_extractor = build("roi_extractors", mask_roi_extractor)
