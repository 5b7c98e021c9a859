"""Inference shared by dense heads: per-level candidate selection, decoding, mapping back, class-wise NMS."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from det_common.bbox import bbox_flip
from detcore import ops
from detcore.errors import ConfigError
from detcore.interfaces import DenseHead
from detcore.structures import Batch, ImageMeta, Instances

# MMDetection v2's dense-head test settings (RetinaNet, FCOS, ...).
DEFAULT_TEST_CFG: dict[str, Any] = {
    "nms_pre": 1000,
    "min_bbox_size": 0,
    "score_thr": 0.05,
    "nms": {"type": "nms", "iou_threshold": 0.5},
    "max_per_img": 100,
}


def filter_scores_and_topk(scores: Tensor, score_thr: float, topk: int) -> tuple[Tensor, Tensor, Tensor]:
    """Keep (prior, class) pairs of ``scores`` (P, C) above ``score_thr``, then the ``topk`` best.

    Returns (scores, labels, prior indices) sorted by decreasing score; ``topk <= 0`` keeps all.
    """
    valid = scores > score_thr
    kept_scores = scores[valid]
    pairs = valid.nonzero()
    num = kept_scores.numel() if topk <= 0 else min(topk, kept_scores.numel())
    kept_scores, order = kept_scores.topk(num)
    pairs = pairs[order]
    return kept_scores, pairs[:, 1], pairs[:, 0]


def batched_nms_cfg(boxes: Tensor, scores: Tensor, labels: Tensor, nms_cfg: Mapping[str, Any]) -> Tensor:
    """Indices kept by NMS configured as ``{type = "nms", iou_threshold, class_agnostic = false}``."""
    nms_type = nms_cfg.get("type", "nms")
    if nms_type != "nms":
        raise ConfigError(f"Dense heads support nms type 'nms' only, got {nms_type!r} in {dict(nms_cfg)!r}.")
    iou_threshold = float(nms_cfg.get("iou_threshold", 0.5))
    if nms_cfg.get("class_agnostic", False):
        return ops.nms(boxes, scores, iou_threshold)
    return ops.batched_nms(boxes, scores, labels, iou_threshold)


def map_boxes_back(boxes: Tensor, meta: ImageMeta) -> Tensor:
    """Boxes in network-input pixels -> original-image pixels (undo flip, then divide by scale_factor)."""
    if meta.flip:
        boxes = bbox_flip(boxes, meta.img_shape, meta.flip_direction or "horizontal")
    w_scale, h_scale = meta.scale_factor
    return boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])


class BaseDenseHead(DenseHead):
    """A dense head whose ``forward`` returns per-level (cls_scores, bbox_preds[, score_factors]).

    Subclasses set ``prior_generator``, ``bbox_coder``, ``num_classes``, ``use_sigmoid_cls``,
    ``test_cfg`` and implement ``forward`` and ``loss_by_feat``.
    """

    num_classes: int
    use_sigmoid_cls: bool = True
    #: values regressed per prior (4: deltas or distances)
    box_dim: int = 4
    test_cfg: dict[str, Any]

    # -- training ---------------------------------------------------------------------------
    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        return self.loss_by_feat(*self(feats), batch=batch)

    def loss_and_predict(
        self, feats: Sequence[Tensor], batch: Batch, rescale: bool = False
    ) -> tuple[dict[str, Tensor], list[Instances]]:
        """One forward pass for both the losses and the (detached) predictions."""
        outs = self(feats)
        losses = self.loss_by_feat(*outs, batch=batch)
        return losses, self.predict_by_feat(*outs, metas=batch.metas, rescale=rescale)

    @abstractmethod
    def loss_by_feat(self, *outs: Any, batch: Batch) -> dict[str, Tensor]:
        """Losses from the raw per-level outputs of ``forward``."""

    # -- inference --------------------------------------------------------------------------
    def predict(
        self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = True
    ) -> list[Instances]:
        return self.predict_by_feat(*self(feats), metas=metas, rescale=rescale)

    def predict_by_feat(
        self,
        cls_scores: Sequence[Tensor],
        bbox_preds: Sequence[Tensor],
        score_factors: Sequence[Tensor] | None = None,
        *,
        metas: Sequence[ImageMeta],
        rescale: bool = True,
        cfg: Mapping[str, Any] | None = None,
    ) -> list[Instances]:
        """Detections per image from per-level maps (N, C*A, H, W), (N, 4*A, H, W), (N, A, H, W)."""
        cfg = {**DEFAULT_TEST_CFG, **(self.test_cfg or {}), **(cfg or {})}
        featmap_sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        priors = self.prior_generator.grid_priors(
            featmap_sizes, dtype=cls_scores[0].dtype, device=cls_scores[0].device
        )
        results = []
        for i, meta in enumerate(metas):
            factors = None if score_factors is None else [s[i].detach() for s in score_factors]
            results.append(
                self._predict_single(
                    [c[i].detach() for c in cls_scores],
                    [b[i].detach() for b in bbox_preds],
                    factors,
                    priors,
                    meta,
                    rescale,
                    cfg,
                )
            )
        return results

    def _level_scores(self, cls_logits: Tensor, factor_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(P, C) scores to rank candidates by, and an optional (P,) factor multiplied in before NMS."""
        scores = cls_logits.sigmoid() if self.use_sigmoid_cls else cls_logits.softmax(-1)[:, :-1]
        return scores, None if factor_logits is None else factor_logits.sigmoid()

    def _decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int]) -> Tensor:
        return self.bbox_coder.decode(priors, deltas, max_shape=max_shape)

    def _predict_single(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        score_factors: list[Tensor] | None,
        priors: list[Tensor],
        meta: ImageMeta,
        rescale: bool,
        cfg: Mapping[str, Any],
    ) -> Instances:
        img_shape = tuple(meta.img_shape)
        all_boxes, all_scores, all_labels, all_factors = [], [], [], []
        for level, (cls_score, bbox_pred) in enumerate(zip(cls_scores, bbox_preds)):
            num_channels = cls_score.shape[0] // (bbox_pred.shape[0] // self.box_dim)
            logits = cls_score.permute(1, 2, 0).reshape(-1, num_channels)
            deltas = bbox_pred.permute(1, 2, 0).reshape(-1, self.box_dim)
            factor_logits = None
            if score_factors is not None:
                factor_logits = score_factors[level].permute(1, 2, 0).reshape(-1)
            scores, factors = self._level_scores(logits, factor_logits)
            scores, labels, keep = filter_scores_and_topk(scores, cfg["score_thr"], cfg["nms_pre"])
            if keep.numel() == 0:
                all_boxes.append(deltas.new_zeros((0, 4)))
            else:
                all_boxes.append(self._decode(priors[level][keep], deltas[keep], img_shape))
            all_scores.append(scores)
            all_labels.append(labels)
            if factors is not None:
                all_factors.append(factors[keep])
        boxes = torch.cat(all_boxes)
        scores = torch.cat(all_scores)
        labels = torch.cat(all_labels)
        if all_factors:
            scores = scores * torch.cat(all_factors)
        if cfg.get("min_bbox_size", 0) > 0:
            wh = boxes[:, 2:] - boxes[:, :2]
            big = (wh > cfg["min_bbox_size"]).all(dim=1)
            boxes, scores, labels = boxes[big], scores[big], labels[big]
        if rescale:
            boxes = map_boxes_back(boxes, meta)
        if boxes.numel() > 0:
            keep = batched_nms_cfg(boxes, scores, labels, cfg["nms"])[: cfg["max_per_img"]]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        image_size = tuple(meta.ori_shape) if rescale else img_shape
        return Instances(image_size, boxes=boxes, scores=scores, labels=labels)
