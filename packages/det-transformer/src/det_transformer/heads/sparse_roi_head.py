"""Sparse R-CNN's iterative RoI head (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with Learnable
Proposals") on det-common's stage-indexed ``BaseRoIHead``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from det_common.bbox import bbox2roi
from det_common.heads.roi.base_roi_head import BaseRoIHead, at_stage
from det_common.postprocess import map_boxes_back
from detcore.interfaces import SamplingResult
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances


@dataclass
class ProposalState:
    """What one stage hands the next: each image's boxes (N, 4) and all proposal features (B, N, C)."""

    boxes: list[Tensor]
    features: Tensor


@dataclass
class StageOutputs:
    """One stage's outputs for every proposal of the batch."""

    cls_score: Tensor  # (B, N, K) logits
    boxes: list[Tensor]  # per image (N, 4): the stage's proposals moved by its deltas
    features: Tensor  # (B, N, C) the new proposal features


def per_stage(value: Any, num_stages: int, name: str) -> list[Any]:
    """``value`` for every stage: one table repeated, or a list of ``num_stages`` tables."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_stages:
            raise ValueError(f"SparseRoIHead: {name} lists {len(value)} entries for num_stages = {num_stages}")
        return list(value)
    return [value] * num_stages


class SparseRoIHead(BaseRoIHead):
    """``num_stages`` ``DIIHead`` stages, each regressing the previous stage's boxes (detached) and updating the
    proposal features (kept in the graph). Every stage is matched one to one to the ground truth (Hungarian
    assignment, ``PseudoSampler``) on its own predictions and trained on all proposals (``s{i}.loss_*``).
    Inference reads the last stage only: the ``max_per_img`` best (proposal, class) scores, no NMS.

    Layout as MMDetection: ``roi_head.bbox_head.<stage>.*``; ``train_cfg`` is a list of per-stage tables
    (or one for all) with ``assigner``, ``sampler``, ``pos_weight``; ``test_cfg`` holds ``max_per_img``.
    """

    def __init__(self, num_stages: int = 6, stage_loss_weights: Sequence[float] = (1, 1, 1, 1, 1, 1),
                 proposal_feature_channel: int = 256, bbox_roi_extractor: dict[str, Any] | None = None,
                 bbox_head: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
                 train_cfg: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
                 test_cfg: dict[str, Any] | None = None) -> None:
        if bbox_roi_extractor is None or bbox_head is None:
            raise ValueError("SparseRoIHead needs bbox_roi_extractor and bbox_head")
        train_cfgs = per_stage(train_cfg, num_stages, "train_cfg") if train_cfg else None
        super().__init__(num_stages, stage_loss_weights, train_cfgs, dict(test_cfg or {"max_per_img": 100}))
        self.train_cfg = self.train_cfgs
        self.proposal_feature_channel = proposal_feature_channel
        self.bbox_roi_extractor = nn.ModuleList(build("roi_extractors", cfg) for cfg in
                                                per_stage(bbox_roi_extractor, num_stages, "bbox_roi_extractor"))
        self.bbox_head = nn.ModuleList(build("bbox_heads", cfg) for cfg in per_stage(bbox_head, num_stages, "bbox_head"))
        self.mask_roi_extractor = self.mask_head = None
        for stage, sampler in enumerate(self.samplers):
            if type(sampler).__name__ != "PseudoSampler":
                raise ValueError(f"SparseRoIHead: train_cfg[{stage}].sampler must be PseudoSampler (every proposal "
                                 f"is trained), got {type(sampler).__name__}")

    # -- one stage ------------------------------------------------------------------------
    def stage_forward(self, stage: int, feats: Sequence[Tensor], state: ProposalState,
                      metas: Sequence[ImageMeta]) -> StageOutputs:
        """Stage ``stage`` on the proposals: RoI features of its boxes, the DII head, and its deltas decoded."""
        rois = bbox2roi(state.boxes)
        cls_score, deltas, features, _ = at_stage(self.bbox_head, stage)(
            self.bbox_roi_feats(stage, feats, rois), state.features)
        labels = torch.zeros(deltas.shape[1], dtype=torch.long, device=deltas.device)  # class agnostic
        boxes = [self.regress(stage, img_rois, labels, img_deltas, meta)
                 for img_rois, img_deltas, meta in zip(rois.split(deltas.shape[1]), deltas, metas)]
        return StageOutputs(cls_score, boxes, features)

    def first_stage_inputs(self, proposals: list[Instances]) -> ProposalState:
        """The learned proposal boxes, not detached (the first stage's losses train them), and their features."""
        for proposal in proposals:
            if not proposal.has("features"):
                raise ValueError("SparseRoIHead needs proposals with `features` (use rpn_head.type = EmbeddingRPNHead)")
        return ProposalState([p.boxes[:, :4] for p in proposals], torch.stack([p.features for p in proposals]))

    def match(self, stage: int, outputs: StageOutputs, batch: Batch) -> list[SamplingResult]:
        """Each image's proposals matched one to one to its ground truth on this stage's (detached) predictions."""
        results = []
        for scores, boxes, gt, meta in zip(outputs.cls_score.detach(), outputs.boxes, batch.gt, batch.metas):
            boxes = boxes.detach()
            pred = Instances(tuple(meta.img_shape[:2]), priors=boxes, boxes=boxes, scores=scores)
            results.append(self.samplers[stage].sample(self.assigners[stage].assign(pred, gt), pred, gt))
        return results

    def stage_loss(self, stage: int, feats: Sequence[Tensor], state: ProposalState,  # type: ignore[override]
                   batch: Batch) -> tuple[dict[str, Tensor], ProposalState]:
        """Stage ``stage``'s losses on all proposals and the next stage's proposals (boxes detached)."""
        outputs = self.stage_forward(stage, feats, state, batch.metas)
        head = at_stage(self.bbox_head, stage)
        targets = head.get_targets(self.match(stage, outputs, batch), self.train_cfgs[stage].get("pos_weight", -1.0))
        boxes = torch.cat(outputs.boxes)
        imgs_whwh = torch.cat([boxes.new_tensor([m.img_shape[1], m.img_shape[0]] * 2).expand(len(b), 4)
                               for b, m in zip(outputs.boxes, batch.metas)])
        cls_score = outputs.cls_score.reshape(-1, outputs.cls_score.shape[-1])
        losses = head.loss(cls_score, boxes, imgs_whwh, *targets)
        return losses, ProposalState([b.detach() for b in outputs.boxes], outputs.features)

    # -- inference ------------------------------------------------------------------------
    def predict_bbox(self, feats: Sequence[Tensor], proposals: list[Instances], metas: Sequence[ImageMeta],
                     rescale: bool) -> list[Instances]:
        """The last stage's ``max_per_img`` best (proposal, class) pairs per image (sigmoid scores, or softmax
        without background), boxes in original pixels when ``rescale``."""
        state = self.first_stage_inputs(proposals)
        for stage in range(self.num_stages):
            outputs = self.stage_forward(stage, feats, state, metas)
            state = ProposalState(outputs.boxes, outputs.features)
        head = at_stage(self.bbox_head, self.num_stages - 1)
        scores = outputs.cls_score.sigmoid() if head.use_sigmoid else outputs.cls_score.softmax(-1)[..., :-1]
        num_classes = scores.shape[-1]
        results = []
        for img_scores, boxes, meta in zip(scores, outputs.boxes, metas):
            top_scores, top = img_scores.flatten().topk(min(self.test_cfg.get("max_per_img", 100), img_scores.numel()))
            img_boxes = boxes[top // num_classes]
            if rescale:
                img_boxes = map_boxes_back(img_boxes, meta)
            size = tuple(meta.ori_shape if rescale else meta.img_shape)[:2]
            results.append(Instances(size, boxes=img_boxes, scores=top_scores, labels=top % num_classes))
        return results
