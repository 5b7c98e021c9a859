"""SCNet's RoI head (Vu et al. 2021, "SCNet: Training Inference Sample Consistency for Instance Segmentation").

A ``HybridTaskCascadeRoIHead`` (semantic branch and fusion) without interleaving or mask information flow,
with ONE mask head that trains on the last stage's samples and predicts on the final boxes, so training and
inference see the same kind of RoIs (sample consistency). It changes these steps of the stage-indexed base:

* ``context``: also runs the global context head once per batch (``loss_glbctx``); its (N, C, 1, 1) vector
  is added to every RoI's box and mask features (``bbox_roi_feats`` / ``mask_roi_feats``);
* ``bbox_forward``: keeps the box head's shared fc features, which the feature relay head turns into
  14x14 maps added to the mask features of the same RoIs (``mask_loss`` in training, ``mask_probs`` at test,
  where the last stage's box head runs once more on the final boxes);
* ``weighted_stage_losses``: the mask loss is logged as ``loss_mask`` weighted by the sum of the stage weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from detcore.interfaces import SamplingResult
from detcore.registry import build
from detcore.structures import Batch

from det_common.heads.roi.base_roi_head import BoxForward, BoxResults, MaskResults

from det_cascade.heads.htc_roi_head import HybridTaskCascadeRoIHead, SemanticFeatures


class SCNetFeatures(SemanticFeatures):
    """FPN levels with SCNet's per-batch context: ``semantic`` features (or None), the global context ``glbctx``
    (N, C, 1, 1) (or None) and, for the mask branch, the relayed box features of its RoIs ``relayed`` (or None)."""

    glbctx: Tensor | None
    relayed: Tensor | None

    def __new__(
        cls, levels: Sequence[Tensor], semantic: Tensor | None, glbctx: Tensor | None, relayed: Tensor | None = None
    ) -> "SCNetFeatures":
        feats = super().__new__(cls, levels, semantic)
        feats.glbctx = glbctx
        feats.relayed = relayed
        return feats

    def with_levels(self, levels: Sequence[Tensor]) -> "SCNetFeatures":
        """The same context with other levels (``pooling_features``' converted copies)."""
        return SCNetFeatures(levels, self.semantic, self.glbctx, self.relayed)

    def relaying(self, relayed: Tensor | None) -> "SCNetFeatures":
        """The same features carrying ``relayed`` for the mask branch's RoIs."""
        return SCNetFeatures(self, self.semantic, self.glbctx, relayed)


@dataclass
class SCNetBoxForward(BoxForward):
    """A stage's box outputs and the box head's shared fc features (K, fc_out_channels)."""

    shared_feat: Tensor


class SCNetRoIHead(HybridTaskCascadeRoIHead):
    """Cascade box stages, one ``mask_head`` (``roi_head.mask_head.*``), optional ``glbctx_head`` and
    ``feat_relay_head``; ``mask_roi_extractor`` / ``mask_head`` are single tables. Other arguments
    (``bbox_roi_extractor``, ``bbox_head``, ``semantic_roi_extractor``, ``semantic_head``, ``semantic_fusion``,
    ``train_cfg``, ``test_cfg``) as ``HybridTaskCascadeRoIHead``, which SCNet runs without interleaving or
    mask information flow.
    """

    def __init__(
        self,
        num_stages: int,
        stage_loss_weights: Sequence[float],
        mask_roi_extractor: dict[str, Any],
        mask_head: dict[str, Any],
        feat_relay_head: dict[str, Any] | None = None,
        glbctx_head: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for name, value in (("mask_roi_extractor", mask_roi_extractor), ("mask_head", mask_head)):
            if not isinstance(value, dict):
                raise ValueError(f"SCNetRoIHead: {name} must be one table (SCNet has one mask head), got {value!r}")
        super().__init__(num_stages, stage_loss_weights, interleaved=False, mask_info_flow=False, **kwargs)
        self.mask_roi_extractor = build("roi_extractors", mask_roi_extractor)
        self.mask_head = build("mask_heads", mask_head)
        self.feat_relay_head = None if feat_relay_head is None else build("mask_heads", feat_relay_head)
        self.glbctx_head = None if glbctx_head is None else build("context_heads", glbctx_head)

    # -- features -------------------------------------------------------------------------
    def context(self, feats: Sequence[Tensor], batch: Batch | None = None) -> tuple[Sequence[Tensor], dict[str, Tensor]]:
        """HTC's context plus the global context vector and, when training, its loss ``loss_glbctx``."""
        feats, losses = super().context(feats, batch)
        glbctx = None
        if self.glbctx_head is not None:
            logits, glbctx = self.glbctx_head(feats)
            if batch is not None:
                losses["loss_glbctx"] = self.glbctx_head.loss(logits, [gt.labels for gt in batch.gt])
        return SCNetFeatures(feats, getattr(feats, "semantic", None), glbctx), losses

    @staticmethod
    def fuse_glbctx(feats: Sequence[Tensor], rois: Tensor, roi_feats: Tensor) -> Tensor:
        """``roi_feats`` plus the global context vector of each RoI's image."""
        glbctx = getattr(feats, "glbctx", None)
        return roi_feats if glbctx is None else roi_feats + glbctx[rois[:, 0].long()]

    def bbox_roi_feats(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        return self.fuse_glbctx(feats, rois, super().bbox_roi_feats(stage, feats, rois))

    def mask_roi_feats(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Pooled, semantic and global context features, plus the relayed box features of the same RoIs."""
        roi_feats = self.fuse_glbctx(feats, rois, super().mask_roi_feats(stage, feats, rois))
        relayed = getattr(feats, "relayed", None)
        return roi_feats if relayed is None else roi_feats + relayed

    def bbox_forward(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> SCNetBoxForward:
        roi_feats = self.bbox_roi_feats(stage, feats, rois)
        cls_score, bbox_pred, shared = self.bbox_head[stage](roi_feats, return_shared_feat=True)
        return SCNetBoxForward(cls_score, bbox_pred, roi_feats, shared)

    def relay(self, feats: Sequence[Tensor], shared_feat: Tensor) -> Sequence[Tensor]:
        """``feats`` carrying the feature relay's maps of the box head's shared features (unchanged without relay)."""
        if self.feat_relay_head is None:
            return feats
        return feats.relaying(self.feat_relay_head(shared_feat))

    # -- training -------------------------------------------------------------------------
    def mask_loss(
        self,
        stage: int,
        feats: Sequence[Tensor],
        sampling_results: list[SamplingResult],
        batch: Batch,
        box_results: BoxResults,
    ) -> MaskResults:
        """The base's mask loss, with the last box stage's shared features of the positive RoIs relayed."""
        counts = [len(res.priors) for res in sampling_results]
        shared = box_results.outputs.shared_feat.split(counts)
        positives = torch.cat([feat[: len(res.pos_priors)] for feat, res in zip(shared, sampling_results)])
        return super().mask_loss(stage, self.relay(feats, positives), sampling_results, batch, box_results)

    def weighted_stage_losses(self, stage: int, stage_losses: dict[str, Tensor]) -> dict[str, Tensor]:
        """The base's naming and weighting, but the one mask head's loss is ``loss_mask`` times the summed weights."""
        stage_losses = dict(stage_losses)
        mask_losses = {name: stage_losses.pop(name) for name in ("loss_mask",) if name in stage_losses}
        total = sum(self.stage_loss_weights)
        return {**super().weighted_stage_losses(stage, stage_losses),
                **{name: value * total for name, value in mask_losses.items()}}

    # -- inference ------------------------------------------------------------------------
    def mask_probs(self, feats: Sequence[Tensor], rois: Tensor, labels: Tensor) -> Tensor:
        """The mask head's probabilities on the final boxes, with the last box stage's features of them relayed."""
        shared = self.bbox_forward(self.num_stages - 1, feats, rois).shared_feat
        return super().mask_probs(self.relay(feats, shared), rois, labels)
