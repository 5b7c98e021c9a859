"""BaseDenseHead: the steps every dense head shares, each an overridable method.

Training: ``forward`` -> ``DenseOutputs``; ``get_priors``; ``get_targets`` (per image
``get_targets_single`` over ``assignment_inputs``) -> ``DenseTargets``; ``loss_from_targets``.
Inference: ``get_priors``; per image and level ``level_scores`` and ``filter_scores_and_topk``;
``decode``; ``nms_post_process`` (shared with the RPN and the RoI heads, see ``det_common.postprocess``).
A new head (ATSS, GFL, PAA, VFNet, ...) overrides the one step it changes.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from det_common.heads.dense_structures import DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.postprocess import DENSE_TEST_CFG, filter_scores_and_topk, map_boxes_back, nms_post_process
from detcore.interfaces import DenseHead
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

__all__ = ["BaseDenseHead", "filter_scores_and_topk", "map_boxes_back"]


class BaseDenseHead(DenseHead):
    """A head predicting classes and boxes at every prior of every feature level.

    Builds ``prior_generator``, ``bbox_coder``, ``loss_cls`` and ``loss_bbox`` from their configs;
    a sigmoid classifier (``loss_cls.use_sigmoid``) has ``num_classes`` outputs, a softmax one a
    background column more. ``reg_decoded_bbox`` applies ``loss_bbox`` to decoded boxes (IoU losses).
    Subclasses build their layers in ``_init_layers`` and return per-level
    ``(cls_score, bbox_pred[, score_factor])`` from ``forward_single``.
    """

    #: values regressed per prior (4: deltas or distances)
    box_dim: int = 4
    #: NMS runs within each "label" (detections) or each "level" (RPN proposals)
    nms_groups: str = "label"
    #: test settings a config's ``test_cfg`` is laid over
    default_test_cfg: Mapping[str, Any] = DENSE_TEST_CFG
    #: the keys a config's ``train_cfg`` / ``test_cfg`` may hold (checked by detcore.engine.validation)
    train_cfg_keys: tuple[str, ...] = ("assigner", "sampler", "allowed_border", "pos_weight", "debug")
    test_cfg_keys: tuple[str, ...] = ("nms_pre", "min_bbox_size", "score_thr", "nms", "max_per_img")

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int,
        prior_generator: Mapping[str, Any],
        bbox_coder: Mapping[str, Any],
        loss_cls: Mapping[str, Any],
        loss_bbox: Mapping[str, Any],
        reg_decoded_bbox: bool = False,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.prior_generator = build("prior_generators", prior_generator)
        self.bbox_coder = build("bbox_coders", bbox_coder)
        self.loss_cls = build("losses", loss_cls)
        self.loss_bbox = build("losses", loss_bbox)
        self.use_sigmoid_cls = bool(getattr(self.loss_cls, "use_sigmoid", False))
        self.cls_out_channels = num_classes if self.use_sigmoid_cls else num_classes + 1
        self.reg_decoded_bbox = reg_decoded_bbox
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = {**self.default_test_cfg, **dict(test_cfg or {})}

    # -- forward ----------------------------------------------------------------------------
    @abstractmethod
    def _init_layers(self) -> None:
        """Build the head's layers (called by subclasses' ``__init__``)."""

    @abstractmethod
    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, ...]:
        """(cls_score, bbox_pred[, score_factor]) maps of one level."""

    def forward(self, feats: Sequence[Tensor]) -> DenseOutputs:
        """Every level through ``forward_single``, gathered by name."""
        per_level = [self.forward_single(x, level) for level, x in enumerate(feats)]
        cls_scores, bbox_preds, *rest = (list(maps) for maps in zip(*per_level))
        return DenseOutputs(cls_scores, bbox_preds, rest[0] if rest else None)

    def get_priors(self, outs: DenseOutputs) -> DensePriors:
        """The priors of every level, for the feature-map sizes of ``outs``."""
        first = outs.cls_scores[0]
        return DensePriors(self.prior_generator.grid_priors(outs.featmap_sizes, dtype=first.dtype, device=first.device))

    # -- training ---------------------------------------------------------------------------
    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        return self.loss_by_feat(self(feats), batch)

    def loss_and_predict(
        self, feats: Sequence[Tensor], batch: Batch, rescale: bool = False
    ) -> tuple[dict[str, Tensor], list[Instances]]:
        """One forward pass for both the losses and the (detached) predictions."""
        outs = self(feats)
        return self.loss_by_feat(outs, batch), self.predict_by_feat(outs, batch.metas, rescale=rescale)

    def loss_by_feat(self, outs: DenseOutputs, batch: Batch) -> dict[str, Tensor]:
        """Priors -> targets -> losses."""
        if batch.gt is None:
            raise ValueError(f"{type(self).__name__}.loss needs ground truth (batch.gt is None)")
        priors = self.get_priors(outs)
        targets = self.get_targets(priors, outs, batch)
        return self.loss_from_targets(outs, priors, targets, batch)

    def get_targets(self, priors: DensePriors, outs: DenseOutputs, batch: Batch) -> DenseTargets:
        """The targets of every image (``get_targets_single``), concatenated over the batch."""
        assert batch.gt is not None
        per_image = []
        for i, meta in enumerate(batch.metas):
            pred = self.assignment_inputs(priors, outs, i, meta)
            ignored = batch.ignored[i] if batch.ignored is not None else None
            per_image.append(self.get_targets_single(pred, batch.gt[i], ignored, meta))
        return DenseTargets.cat(per_image)

    def assignment_inputs(self, priors: DensePriors, outs: DenseOutputs, image: int, meta: ImageMeta) -> Instances:
        """What the assigner sees of one image: ``priors`` and ``level_ids``; prediction-aware heads
        (PAA, FreeAnchor, ...) add the decoded ``boxes`` and ``scores`` of ``outs``."""
        return Instances(tuple(meta.img_shape), priors=priors.flat, level_ids=priors.level_ids)

    @abstractmethod
    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """Targets of every prior of one image."""

    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Classification loss over every weighted prior and box loss over the positives, both averaged
        by ``targets.avg_factor``. Losses whose statistics depend on what one call sees (GHM's gradient
        density: their ``per_level`` is True) are called once per pyramid level, as MMDetection does, and summed."""
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, self.box_dim).reshape(-1, self.box_dim)
        if self.reg_decoded_bbox:
            reg = self.bbox_coder.decode(priors.flat.repeat(len(batch.metas), 1), reg)
        per_level = getattr(self.loss_cls, "per_level", False) or getattr(self.loss_bbox, "per_level", False)
        splits = level_rows(priors, len(batch.metas)) if per_level else [slice(None)]
        losses = {"loss_cls": cls.new_zeros(()), "loss_bbox": reg.new_zeros(())}
        for rows in splits:
            losses["loss_cls"] = losses["loss_cls"] + self.loss_cls(
                cls[rows], targets.labels[rows], targets.label_weights[rows], avg_factor=targets.avg_factor
            )
            losses["loss_bbox"] = losses["loss_bbox"] + self.loss_bbox(
                reg[rows], targets.bbox_targets[rows], targets.bbox_weights[rows], avg_factor=targets.avg_factor
            )
        return losses

    # -- inference --------------------------------------------------------------------------
    def predict(self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = True) -> list[Instances]:
        """Detections per image; the network may run in reduced precision, post-processing runs in fp32."""
        return self.predict_by_feat(self(feats).float(), metas, rescale=rescale)

    def predict_cfg(self, cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The test settings in force: ``test_cfg`` with ``cfg`` laid over it."""
        return {**self.test_cfg, **dict(cfg or {})}

    def predict_by_feat(
        self,
        outs: DenseOutputs,
        metas: Sequence[ImageMeta],
        rescale: bool = True,
        cfg: Mapping[str, Any] | None = None,
    ) -> list[Instances]:
        """Detections of every image from the raw outputs."""
        cfg = self.predict_cfg(cfg)
        priors = self.get_priors(outs)
        return [self.predict_single(outs, priors, i, meta, rescale, cfg) for i, meta in enumerate(metas)]

    def level_outputs(self, outs: DenseOutputs, level: int, image: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """(class logits (P, C), regressed values (P, box_dim) for ``decode``, score-factor logits (P,) or None)
        of one image and level, detached; heads regressing a distribution (GFL) turn it into values here."""
        logits = outs.cls_scores[level][image].detach().permute(1, 2, 0).reshape(-1, self.cls_out_channels)
        deltas = outs.bbox_preds[level][image].detach().permute(1, 2, 0).reshape(-1, self.box_dim)
        factor_logits = None
        if outs.score_factors is not None:
            factor_logits = outs.score_factors[level][image].detach().permute(1, 2, 0).reshape(-1)
        return logits, deltas, factor_logits

    def level_scores(self, cls_logits: Tensor, factor_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(P, C) scores to rank candidates by, and an optional (P,) factor multiplied in before NMS."""
        scores = cls_logits.sigmoid() if self.use_sigmoid_cls else cls_logits.softmax(-1)[:, :-1]
        return scores, None if factor_logits is None else factor_logits.sigmoid()

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int]) -> Tensor:
        """Boxes (P, 4) from priors and regressed values, clipped to ``max_shape``."""
        return self.bbox_coder.decode(priors, deltas, max_shape=max_shape)

    def predict_single(
        self,
        outs: DenseOutputs,
        priors: DensePriors,
        image: int,
        meta: ImageMeta,
        rescale: bool,
        cfg: Mapping[str, Any],
    ) -> Instances:
        """Per level the ``nms_pre`` best (prior, class) pairs above ``score_thr``, decoded, then ``nms_post_process``."""
        kept_priors, kept_deltas, kept_scores, kept_labels, kept_factors, kept_levels = [], [], [], [], [], []
        for level, level_priors in enumerate(priors.per_level):
            logits, deltas, factor_logits = self.level_outputs(outs, level, image)
            scores, factors = self.level_scores(logits, factor_logits)
            scores, labels, keep = filter_scores_and_topk(scores, cfg.get("score_thr"), cfg.get("nms_pre", -1))
            kept_priors.append(level_priors[keep])
            kept_deltas.append(deltas[keep])
            kept_scores.append(scores)
            kept_labels.append(labels)
            kept_levels.append(torch.full_like(labels, level))
            if factors is not None:
                kept_factors.append(factors[keep])
        boxes = self.decode(torch.cat(kept_priors), torch.cat(kept_deltas), tuple(meta.img_shape))
        result, _ = nms_post_process(
            boxes,
            torch.cat(kept_scores),
            torch.cat(kept_labels),
            cfg,
            score_factors=torch.cat(kept_factors) if kept_factors else None,
            groups=torch.cat(kept_levels) if self.nms_groups == "level" else None,
            meta=meta,
            rescale=rescale,
        )
        return result


def level_rows(priors: DensePriors, num_images: int) -> list[Tensor]:
    """Per pyramid level, the rows of a batch's flattened per-prior tensors (image after image) on that level."""
    total = sum(priors.num_per_level)
    device = priors.per_level[0].device
    images = torch.arange(num_images, device=device)[:, None] * total
    rows, start = [], 0
    for count in priors.num_per_level:
        rows.append((images + start + torch.arange(count, device=device)[None]).flatten())
        start += count
    return rows
