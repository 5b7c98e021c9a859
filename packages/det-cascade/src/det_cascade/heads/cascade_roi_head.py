"""Cascade R-CNN's RoI head (Cai & Vasconcelos 2018): box stages trained at rising IoU thresholds.

Each stage has its own box head (MMDetection layout: ``roi_head.bbox_head.<stage>.*``), optionally
a mask head (``roi_head.mask_head.<stage>.*``, Cascade Mask R-CNN) and, in training, its own
assigner and sampler (``train_cfg`` is a list, one table per stage). Training, refinement and
inference are ``det_common``'s stage-indexed ``BaseRoIHead``; this class only builds the stages.
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from detcore.registry import build

from det_common.heads.roi.base_roi_head import BaseRoIHead


def per_stage(value: Any, num_stages: int, name: str) -> list[Any]:
    """``value`` for every stage: a list of ``num_stages`` tables, or one table used by all stages."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_stages:
            raise ValueError(f"CascadeRoIHead: {name} lists {len(value)} entries for num_stages = {num_stages}")
        return list(value)
    return [value] * num_stages


def stage_modules(kind: str, value: Any, num_stages: int, name: str) -> nn.ModuleList:
    """One ``kind`` module per stage from ``value`` (one table for all stages or a list of them)."""
    return nn.ModuleList(build(kind, cfg) for cfg in per_stage(value, num_stages, name))


class CascadeRoIHead(BaseRoIHead):
    """``num_stages`` box stages; stage ``i``'s losses are reported as ``s{i}.loss_*`` times ``stage_loss_weights[i]``.

    ``bbox_roi_extractor``, ``bbox_head``, ``mask_roi_extractor`` and ``mask_head`` are one table
    (repeated for every stage) or a list of tables. ``train_cfg`` is a list with, per stage,
    ``assigner``, ``sampler``, ``pos_weight`` (and ``mask_size``); ``test_cfg`` holds ``score_thr``,
    ``nms``, ``max_per_img`` (and ``mask_thr_binary``) for the final detections.
    """

    def __init__(
        self,
        num_stages: int,
        stage_loss_weights: Sequence[float],
        bbox_roi_extractor: dict[str, Any] | Sequence[dict[str, Any]],
        bbox_head: dict[str, Any] | Sequence[dict[str, Any]],
        mask_roi_extractor: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        mask_head: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        train_cfg: Sequence[dict[str, Any]] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        train_cfgs = per_stage(train_cfg, num_stages, "train_cfg") if train_cfg else None
        super().__init__(num_stages, stage_loss_weights, train_cfgs, test_cfg)
        self.train_cfg = self.train_cfgs
        self.bbox_roi_extractor = stage_modules("roi_extractors", bbox_roi_extractor, num_stages, "bbox_roi_extractor")
        self.bbox_head = stage_modules("bbox_heads", bbox_head, num_stages, "bbox_head")
        self.mask_roi_extractor = self.mask_head = None
        if mask_head is not None:
            if mask_roi_extractor is None:
                raise ValueError("CascadeRoIHead: a mask_head needs a mask_roi_extractor")
            self.mask_roi_extractor = stage_modules("roi_extractors", mask_roi_extractor, num_stages, "mask_roi_extractor")
            self.mask_head = stage_modules("mask_heads", mask_head, num_stages, "mask_head")
