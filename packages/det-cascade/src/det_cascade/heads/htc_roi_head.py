"""Hybrid Task Cascade's RoI head (Chen et al. 2019, "Hybrid Task Cascade for Instance Segmentation").

A Cascade Mask R-CNN head that changes four steps of det-common's stage-indexed ``BaseRoIHead``:

* ``stage_loss`` (interleaved execution): the box branch trains first; its refined boxes are re-assigned
  and re-sampled with the same stage's settings, and the mask branch trains on those;
* ``mask_forward`` (mask information flow): stage ``s``'s mask head also gets the conv-tower features of
  the mask heads of stages ``0 .. s-1`` run on the same RoIs;
* ``bbox_roi_feats`` / ``mask_roi_feats`` (semantic fusion): the semantic head's features, pooled for the
  same RoIs, are added to the pooled FPN features;
* ``mask_probs``: the last stage's mask (as MMDetection 3.3 predicts).

``loss`` / ``predict`` run the semantic head once per batch (``context``) and hand its features to every step.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch.nn.functional as F
from torch import Tensor

from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

from det_common.heads.roi.base_roi_head import MaskForward, at_stage

from det_cascade.heads.cascade_roi_head import CascadeRoIHead

SEMANTIC_BRANCHES = ("bbox", "mask")


class SemanticFeatures(tuple):
    """The FPN levels (a tuple, as every step expects) carrying the semantic head's features ``semantic``."""

    semantic: Tensor

    def __new__(cls, levels: Sequence[Tensor], semantic: Tensor) -> "SemanticFeatures":
        feats = super().__new__(cls, levels)
        feats.semantic = semantic
        return feats

    def with_levels(self, levels: Sequence[Tensor]) -> "SemanticFeatures":
        """The same semantic features with other levels (``pooling_features``' converted copies)."""
        return SemanticFeatures(levels, self.semantic)


class HybridTaskCascadeRoIHead(CascadeRoIHead):
    """Cascade stages with interleaved box / mask training, mask information flow and an optional semantic branch.

    Arguments of ``CascadeRoIHead``, plus ``semantic_roi_extractor`` and ``semantic_head`` (both or
    neither), ``semantic_fusion`` (the branches that add semantic features: ``bbox``, ``mask``),
    ``interleaved`` and ``mask_info_flow``. The semantic loss is logged as ``loss_semantic_seg``.
    """

    def __init__(
        self,
        num_stages: int,
        stage_loss_weights: Sequence[float],
        semantic_roi_extractor: dict[str, Any] | None = None,
        semantic_head: dict[str, Any] | None = None,
        semantic_fusion: Sequence[str] = SEMANTIC_BRANCHES,
        interleaved: bool = True,
        mask_info_flow: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_stages, stage_loss_weights, **kwargs)
        unknown = set(semantic_fusion) - set(SEMANTIC_BRANCHES)
        if unknown:
            raise ValueError(f"HybridTaskCascadeRoIHead: semantic_fusion names {sorted(unknown)}; use {SEMANTIC_BRANCHES}")
        if (semantic_head is None) != (semantic_roi_extractor is None):
            raise ValueError("HybridTaskCascadeRoIHead: semantic_head and semantic_roi_extractor go together")
        self.semantic_fusion = tuple(semantic_fusion)
        self.interleaved = interleaved
        self.mask_info_flow = mask_info_flow
        self.semantic_head = self.semantic_roi_extractor = None
        if semantic_head is not None:
            self.semantic_roi_extractor = build("roi_extractors", semantic_roi_extractor)
            self.semantic_head = build("semantic_heads", semantic_head)

    @property
    def with_semantic(self) -> bool:
        return self.semantic_head is not None

    # -- features -------------------------------------------------------------------------
    def fuse_semantic(self, branch: str, feats: Sequence[Tensor], rois: Tensor, roi_feats: Tensor) -> Tensor:
        """``roi_feats`` plus the semantic features pooled for the same RoIs (average-pooled to their size)."""
        if not self.with_semantic or branch not in self.semantic_fusion:
            return roi_feats
        semantic = getattr(feats, "semantic", None)
        if semantic is None:
            raise ValueError(
                "HybridTaskCascadeRoIHead: the features carry no semantic map; run the head through loss / predict "
                "(per-image candidate losses, as OHEM ranks by, are not supported with a semantic head)"
            )
        pooled = self.semantic_roi_extractor([semantic], rois)
        if pooled.shape[-2:] != roi_feats.shape[-2:]:
            pooled = F.adaptive_avg_pool2d(pooled, roi_feats.shape[-2:])
        return roi_feats + pooled

    def bbox_roi_feats(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        return self.fuse_semantic("bbox", feats, rois, super().bbox_roi_feats(stage, feats, rois))

    def mask_roi_feats(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        return self.fuse_semantic("mask", feats, rois, super().mask_roi_feats(stage, feats, rois))

    def mask_forward(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> MaskForward:
        """Stage ``stage``'s mask logits; with the information flow, its head also gets the earlier stages' towers."""
        if not self.mask_info_flow:
            return super().mask_forward(stage, feats, rois)
        roi_feats = self.mask_roi_feats(stage, feats, rois)
        res_feat = None
        for earlier in range(stage):
            res_feat = self.mask_head[earlier].conv_feats(roi_feats, res_feat)
        return MaskForward(self.mask_head[stage](roi_feats, res_feat), roi_feats)

    # -- training -------------------------------------------------------------------------
    def stage_loss(
        self, stage: int, feats: Sequence[Tensor], boxes: list[Tensor], batch: Batch
    ) -> tuple[dict[str, Tensor], list[Tensor]]:
        """Interleaved: box losses, refinement, re-sampling among the refined boxes, then the mask loss on those."""
        if not (self.with_mask and self.interleaved):
            return super().stage_loss(stage, feats, boxes, batch)
        sampling_results = self.sample(stage, feats, boxes, batch)
        box_results = self.bbox_loss(stage, feats, sampling_results, batch)
        refined = self.refine(stage, box_results, sampling_results, batch.metas)
        mask_sampling = self.sample(stage, feats, refined, batch)
        mask_results = self.mask_loss(stage, feats, mask_sampling, batch, box_results)
        return {**box_results.losses, **mask_results.losses}, refined

    def context(self, feats: Sequence[Tensor], batch: Batch | None = None) -> tuple[Sequence[Tensor], dict[str, Tensor]]:
        """The features every step sees (the semantic head's attached, run once per batch) and, when training
        (``batch`` given), the losses of the branches that made them: ``loss_semantic_seg`` on ``batch.gt_sem_seg``."""
        if not self.with_semantic:
            return feats, {}
        if batch is not None and batch.gt_sem_seg is None:
            raise ValueError(
                f"{type(self).__name__}: the semantic head trains on semantic maps but the batch has none "
                "(batch.gt_sem_seg); load them with LoadAnnotations(with_seg=True) and the dataset's seg_prefix, "
                "or build the head without semantic_head"
            )
        seg_logits, semantic = self.semantic_head(feats)
        losses = {} if batch is None else {"loss_semantic_seg": self.semantic_head.loss(seg_logits, batch.gt_sem_seg)}
        return SemanticFeatures(feats, semantic), losses

    def loss(self, feats: Sequence[Tensor], proposals: list[Instances], batch: Batch) -> dict[str, Tensor]:
        """The losses of ``context`` (the semantic loss) and every stage's losses."""
        feats, losses = self.context(feats, batch)
        losses.update(super().loss(feats, proposals, batch))
        return losses

    # -- inference ------------------------------------------------------------------------
    def predict(
        self, feats: Sequence[Tensor], proposals: list[Instances], metas: Sequence[ImageMeta], rescale: bool = True
    ) -> list[Instances]:
        """The semantic head (once, on the neck's maps as they come: channels-last / bf16 on the fast path), then
        the stages on the RoI layers' copies of them."""
        return super().predict(self.context(feats)[0], proposals, metas, rescale)

    def mask_probs(self, feats: Sequence[Tensor], rois: Tensor, labels: Tensor) -> Tensor:
        """The last stage's mask probabilities (its head has seen every earlier stage's through the information flow).

        MMDetection 3.3 predicts this way; MMDetection 2 averaged the probabilities of all stages.
        """
        last = self.num_stages - 1
        return at_stage(self.mask_head, last).class_probs(self.mask_forward(last, feats, rois).logits, labels)
