"""AnchorHead: per-level classification and box-delta maps over anchors (MMDetection v2's AnchorHead)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_common.layers import normal_init
from det_common.priors import anchor_inside_flags
from detcore.interfaces import AssignResult, SamplingResult
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

from det_common.heads.base_dense_head import BaseDenseHead

# Classification losses that weigh every anchor themselves, so no sampler is needed (MMDetection's list).
SAMPLING_FREE_LOSSES = ("FocalLoss", "GHMC", "QualityFocalLoss", "VarifocalLoss")

_DEFAULT_ANCHORS = {
    "type": "AnchorGenerator", "scales": [8, 16, 32], "ratios": [0.5, 1.0, 2.0], "strides": [4, 8, 16, 32, 64],
}
_DEFAULT_CODER = {
    "type": "DeltaXYWHBBoxCoder", "target_means": [0.0, 0.0, 0.0, 0.0], "target_stds": [1.0, 1.0, 1.0, 1.0],
}
_DEFAULT_LOSS_CLS = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
_DEFAULT_LOSS_BBOX = {"type": "SmoothL1Loss", "beta": 1.0 / 9.0, "loss_weight": 1.0}


def component_name(cfg: Mapping[str, Any] | None) -> str:
    """The bare ``type`` of a config table (without a ``dist::`` qualifier), or ""."""
    if not isinstance(cfg, Mapping):
        return type(cfg).__name__ if cfg is not None else ""
    return str(cfg.get("type", "")).split("::")[-1]


class AnchorHead(BaseDenseHead):
    """Anchor-based dense head: ``conv_cls`` / ``conv_reg`` 1x1 convs on every level.

    Training assigns anchors to ground truth (``train_cfg.assigner``), samples them
    (``train_cfg.sampler``, or all anchors for focal-style losses), and averages the
    losses over the positives (plus negatives when sampling). Subclasses (RetinaHead,
    RPNHead) replace ``_init_layers`` / ``forward_single``.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        anchor_generator: Mapping[str, Any] = _DEFAULT_ANCHORS,
        bbox_coder: Mapping[str, Any] = _DEFAULT_CODER,
        reg_decoded_bbox: bool = False,
        loss_cls: Mapping[str, Any] = _DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _DEFAULT_LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.use_sigmoid_cls = bool(loss_cls.get("use_sigmoid", False))
        self.cls_out_channels = num_classes if self.use_sigmoid_cls else num_classes + 1
        self.reg_decoded_bbox = reg_decoded_bbox
        self.prior_generator = build("prior_generators", anchor_generator)
        self.bbox_coder = build("bbox_coders", bbox_coder)
        self.loss_cls = build("losses", loss_cls)
        self.loss_bbox = build("losses", loss_bbox)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        self.sampling = component_name(loss_cls) not in SAMPLING_FREE_LOSSES
        if train_cfg is not None:
            self.assigner = build("assigners", self.train_cfg["assigner"])
            sampler_cfg = self.train_cfg.get("sampler") if self.sampling else None
            if sampler_cfg is None:
                sampler_cfg = {"type": "PseudoSampler"}
                self.sampling = False
            self.sampler = build("samplers", sampler_cfg)
        # every level must have the same number of anchors per location (one conv serves all levels)
        self.num_base_priors = self.prior_generator.num_base_priors[0]
        self._init_layers()
        self.init_weights()

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        self.conv_cls = nn.Conv2d(self.in_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.conv_reg = nn.Conv2d(self.in_channels, self.num_base_priors * self.box_dim, 1)

    def init_weights(self) -> None:
        """Normal(0, 0.01) weights and zero biases for every conv (MMDetection's dense-head init)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                normal_init(module, std=0.01)

    def forward_single(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(cls_score (N, A*C, H, W), bbox_pred (N, A*4, H, W)) of one level."""
        return self.conv_cls(x), self.conv_reg(x)

    def forward(self, feats: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per-level classification scores and box deltas."""
        cls_scores, bbox_preds = [], []
        for x in feats:
            cls_score, bbox_pred = self.forward_single(x)
            cls_scores.append(cls_score)
            bbox_preds.append(bbox_pred)
        return cls_scores, bbox_preds

    # -- targets ----------------------------------------------------------------------------
    def _target_labels(self, gt: Instances) -> Tensor:
        """Class of each ground truth used as the target (RPN overrides: all foreground 0)."""
        return gt.labels

    def _targets_single(
        self,
        flat_anchors: Tensor,
        valid_flags: Tensor,
        num_level_anchors: list[int],
        gt: Instances,
        ignored: Instances | None,
        meta: ImageMeta,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, SamplingResult]:
        """Labels, label weights, box targets and box weights for every anchor of one image.

        Anchors outside the image (beyond ``allowed_border``) or in the padding get weight 0.
        """
        inside = anchor_inside_flags(
            flat_anchors, valid_flags, tuple(meta.img_shape), self.train_cfg.get("allowed_border", -1)
        )
        anchors = flat_anchors[inside]
        level_ids = torch.repeat_interleave(
            torch.arange(len(num_level_anchors), device=inside.device),
            torch.as_tensor(num_level_anchors, device=inside.device),
        )
        pred = Instances(tuple(meta.img_shape), priors=anchors, level_ids=level_ids[inside])
        assign_result: AssignResult = self.assigner.assign(pred, gt, ignored)
        sampling = self.sampler.sample(assign_result, pred, gt)

        num_anchors = flat_anchors.shape[0]
        labels = flat_anchors.new_full((num_anchors,), self.num_classes, dtype=torch.long)
        label_weights = flat_anchors.new_zeros(num_anchors)
        bbox_targets = flat_anchors.new_zeros((num_anchors, self.box_dim))
        bbox_weights = flat_anchors.new_zeros((num_anchors, self.box_dim))
        inside_inds = inside.nonzero().flatten()
        pos = inside_inds[sampling.pos_inds]
        neg = inside_inds[sampling.neg_inds]
        if pos.numel() > 0:
            if self.reg_decoded_bbox:
                bbox_targets[pos] = sampling.pos_gt_boxes.to(bbox_targets.dtype)
            else:
                bbox_targets[pos] = self.bbox_coder.encode(sampling.pos_priors, sampling.pos_gt_boxes).to(
                    bbox_targets.dtype
                )
            bbox_weights[pos] = 1.0
            labels[pos] = self._target_labels(gt)[sampling.pos_assigned_gt_inds]
            pos_weight = self.train_cfg.get("pos_weight", -1)
            label_weights[pos] = 1.0 if pos_weight <= 0 else float(pos_weight)
        if neg.numel() > 0:
            label_weights[neg] = 1.0
        return labels, label_weights, bbox_targets, bbox_weights, sampling

    # -- losses -----------------------------------------------------------------------------
    def loss_by_feat(self, cls_scores: Sequence[Tensor], bbox_preds: Sequence[Tensor], *, batch: Batch) -> dict[str, Tensor]:
        """Classification and box losses over all levels and images.

        The average factor is the number of positives (at least 1 per image, as in MMDetection
        v2), plus the sampled negatives when a sampler is used.
        """
        if batch.gt is None:
            raise ValueError(f"{type(self).__name__}.loss needs ground truth (batch.gt is None)")
        featmap_sizes = [tuple(c.shape[-2:]) for c in cls_scores]
        device, dtype = cls_scores[0].device, cls_scores[0].dtype
        level_anchors = self.prior_generator.grid_priors(featmap_sizes, dtype=dtype, device=device)
        num_level_anchors = [int(a.shape[0]) for a in level_anchors]
        flat_anchors = torch.cat(level_anchors)
        targets = []
        num_pos = num_neg = 0
        valid_by_shape: dict[tuple[int, ...], Tensor] = {}  # images of a batch mostly share one shape
        for i, meta in enumerate(batch.metas):
            img_shape = tuple(meta.img_shape)
            if img_shape not in valid_by_shape:
                level_flags = self.prior_generator.valid_flags(featmap_sizes, img_shape, device=device)
                valid_by_shape[img_shape] = torch.cat(level_flags)
            valid = valid_by_shape[img_shape]
            ignored = batch.ignored[i] if batch.ignored is not None else None
            *image_targets, sampling = self._targets_single(
                flat_anchors, valid, num_level_anchors, batch.gt[i], ignored, meta
            )
            targets.append(image_targets)
            num_pos += max(int(sampling.pos_inds.numel()), 1)
            num_neg += int(sampling.neg_inds.numel())
        labels, label_weights, bbox_targets, bbox_weights = (torch.stack(t) for t in zip(*targets))
        avg_factor = float(num_pos + num_neg if self.sampling else num_pos)

        num_images = len(batch.metas)
        cls_flat = torch.cat(
            [c.permute(0, 2, 3, 1).reshape(num_images, -1, self.cls_out_channels) for c in cls_scores], dim=1
        )
        reg_flat = torch.cat(
            [b.permute(0, 2, 3, 1).reshape(num_images, -1, self.box_dim) for b in bbox_preds], dim=1
        )
        loss_cls = self.loss_cls(
            cls_flat.reshape(-1, self.cls_out_channels), labels.reshape(-1), label_weights.reshape(-1),
            avg_factor=avg_factor,
        )
        reg_flat = reg_flat.reshape(-1, self.box_dim)
        if self.reg_decoded_bbox:
            anchors = flat_anchors.repeat(num_images, 1)
            reg_flat = self.bbox_coder.decode(anchors, reg_flat)
        loss_bbox = self.loss_bbox(
            reg_flat, bbox_targets.reshape(-1, self.box_dim), bbox_weights.reshape(-1, self.box_dim),
            avg_factor=avg_factor,
        )
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}
