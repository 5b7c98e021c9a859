"""AnchorHead: per-level classification and box-delta maps over anchors (MMDetection's AnchorHead)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from det_common.heads.base_dense_head import BaseDenseHead
from det_common.heads.dense_structures import DenseOutputs, DensePriors, DenseTargets
from det_common.layers import normal_init
from det_common.priors import anchor_inside_flags
from detcore.interfaces import AssignResult
from detcore.registry import build
from detcore.structures import ImageMeta, Instances

_DEFAULT_ANCHORS = {
    "type": "AnchorGenerator", "scales": [8, 16, 32], "ratios": [0.5, 1.0, 2.0], "strides": [4, 8, 16, 32, 64],
}
_DEFAULT_CODER = {
    "type": "DeltaXYWHBBoxCoder", "target_means": [0.0, 0.0, 0.0, 0.0], "target_stds": [1.0, 1.0, 1.0, 1.0],
}
_DEFAULT_LOSS_CLS = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
_DEFAULT_LOSS_BBOX = {"type": "SmoothL1Loss", "beta": 1.0 / 9.0, "loss_weight": 1.0}


class AnchorHead(BaseDenseHead):
    """Anchor-based dense head: ``conv_cls`` / ``conv_reg`` 1x1 convs on every level.

    Training assigns the anchors inside the image (``train_cfg.allowed_border``) to ground truth
    (``train_cfg.assigner``) and samples them (``train_cfg.sampler``) unless the classification loss
    weighs every anchor itself (its ``needs_sampling`` is False, e.g. focal loss); losses are averaged
    over the positives (at least 1 per image), plus the sampled negatives when sampling. Subclasses
    (RetinaHead, RPNHead) replace ``_init_layers`` / ``forward_single``; heads whose levels have
    different numbers of anchors per location (SSD) also give each level its own convs.
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
        super().__init__(
            num_classes, in_channels, feat_channels, anchor_generator, bbox_coder, loss_cls, loss_bbox,
            reg_decoded_bbox=reg_decoded_bbox, train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.sampling = bool(getattr(self.loss_cls, "needs_sampling", True))
        if train_cfg is not None:
            self.assigner = build("assigners", self.train_cfg["assigner"])
            sampler_cfg = self.train_cfg.get("sampler") if self.sampling else None
            if sampler_cfg is None:
                sampler_cfg = {"type": "PseudoSampler"}
                self.sampling = False
            self.sampler = build("samplers", sampler_cfg)
        # anchors per location of the first level (the shared convs below serve every level)
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

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """(cls_score (N, A*C, H, W), bbox_pred (N, A*4, H, W)) of one level."""
        return self.conv_cls(x), self.conv_reg(x)

    # -- targets ----------------------------------------------------------------------------
    def assignment_inputs(self, priors: DensePriors, outs: DenseOutputs, image: int, meta: ImageMeta) -> Instances:
        """Priors and level ids plus ``valid``: anchors on the image (not its padding) within ``allowed_border``."""
        pred = super().assignment_inputs(priors, outs, image, meta)
        img_shape = tuple(meta.img_shape)
        flags = torch.cat(self.prior_generator.valid_flags(outs.featmap_sizes, img_shape, device=pred.priors.device))
        pred.valid = anchor_inside_flags(pred.priors, flags, img_shape, self.train_cfg.get("allowed_border", -1))
        return pred

    def target_labels(self, gt: Instances) -> Tensor:
        """Class of each ground truth used as the target (RPN overrides: all foreground 0)."""
        return gt.labels

    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """Assign and sample the valid anchors, then encode the positives' boxes; other anchors get weight 0."""
        inside_inds = pred.valid.nonzero().flatten()
        inside = pred[pred.valid]
        inside.remove("valid")
        assign_result = self.assigner.assign(inside, gt, ignored)
        sampling = self.sampler.sample(assign_result, inside, gt)

        priors = pred.priors
        num_priors = priors.shape[0]
        labels = priors.new_full((num_priors,), self.num_classes, dtype=torch.long)
        label_weights = priors.new_zeros(num_priors)
        bbox_targets = priors.new_zeros((num_priors, self.box_dim))
        bbox_weights = priors.new_zeros((num_priors, self.box_dim))
        assigned = torch.full((num_priors,), -1, dtype=torch.long, device=priors.device)
        assigned[inside_inds] = assign_result.gt_inds.long()
        pos = inside_inds[sampling.pos_inds]
        neg = inside_inds[sampling.neg_inds]
        if pos.numel() > 0:
            if self.reg_decoded_bbox:
                bbox_targets[pos] = sampling.pos_gt_boxes.to(bbox_targets.dtype)
            else:
                encoded = self.bbox_coder.encode(sampling.pos_priors, sampling.pos_gt_boxes)
                bbox_targets[pos] = encoded.to(bbox_targets.dtype)
            bbox_weights[pos] = 1.0
            labels[pos] = self.target_labels(gt)[sampling.pos_assigned_gt_inds]
            pos_weight = self.train_cfg.get("pos_weight", -1)
            label_weights[pos] = 1.0 if pos_weight <= 0 else float(pos_weight)
        if neg.numel() > 0:
            label_weights[neg] = 1.0
        avg_factor = max(pos.numel(), 1) + (neg.numel() if self.sampling else 0)
        targets = DenseTargets(
            labels, label_weights, bbox_targets, bbox_weights, assigned, pos, neg, avg_factor=float(avg_factor)
        )
        return self.adjust_targets(targets, assign_result, inside_inds)

    def adjust_targets(self, targets: DenseTargets, assign_result: AssignResult, inside_inds: Tensor) -> DenseTargets:
        """Hook on one image's targets with the assignment of the anchors ``inside_inds`` they came from (FSAF
        ignores the (anchor, class) pairs its assigner shadows); unchanged by default."""
        return targets
