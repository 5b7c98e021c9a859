"""FSAFHead: the anchor-free branch of FSAF (Zhu et al. 2019, "Feature Selective Anchor-Free Module for
Single-Shot Object Detection"), with online feature selection: each object trains only the pyramid level
where its summed classification and box loss is lowest."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from det_common.heads import AnchorHead
from det_common.heads.dense_structures import DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import bias_init_with_prob, conv_tower, forward_towers, normal_init
from detcore.interfaces import AssignResult
from detcore.structures import Batch

# one square "anchor" per location with the level's stride as its side: the grid cell itself
_ANCHORS = {"type": "AnchorGenerator", "octave_base_scale": 1, "scales_per_octave": 1, "ratios": [1.0],
            "strides": [8, 16, 32, 64, 128]}
_CODER = {"type": "TBLRBBoxCoder", "normalizer": 4.0}
_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0,
             "reduction": "none"}
_LOSS_BBOX = {"type": "IoULoss", "eps": 1e-6, "loss_weight": 1.0, "reduction": "none"}
_ASSIGNER = {"type": "CenterRegionAssigner", "pos_scale": 0.2, "neg_scale": 0.2, "min_pos_iof": 0.01}
#: the per-object loss of a level without positives for that object, so it is never selected
_NO_LOSS = 1e6


class FSAFHead(AnchorHead):
    """RetinaNet's towers (``cls_convs`` / ``reg_convs``, ``retina_cls`` / ``retina_reg``) over one cell-sized
    box per location; box sides (``TBLRBBoxCoder``) through a ReLU, IoU loss on the decoded boxes.

    Targets come from ``CenterRegionAssigner`` on every level; its shadowed (cell, class) pairs are ignored.
    The losses are element-wise (``reduction = "none"``): per object and level the mean loss of its positives
    is taken without gradient, and positives on any other level than the object's cheapest become negatives
    for the loss (their box loss and their class's term dropped). Both losses are averaged over the kept
    positives. ``num_pos`` (per image) and ``pos_recall`` (percent of kept positives whose best class is right,
    and above ``score_threshold`` when given) are logged too.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stacked_convs: int = 4,
        feat_channels: int = 256,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        score_threshold: float | None = None,
        anchor_generator: Mapping[str, Any] = _ANCHORS,
        bbox_coder: Mapping[str, Any] = _CODER,
        reg_decoded_bbox: bool = True,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.stacked_convs = stacked_convs
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.score_threshold = score_threshold
        if train_cfg is not None and "assigner" not in train_cfg:
            train_cfg = {**train_cfg, "assigner": _ASSIGNER}
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, anchor_generator=anchor_generator,
            bbox_coder=bbox_coder, reg_decoded_bbox=reg_decoded_bbox, loss_cls=loss_cls, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )
        if not self.reg_decoded_bbox:
            raise ValueError("FSAFHead: the box loss is on decoded boxes; set bbox_head.reg_decoded_bbox = true")
        if not self.use_sigmoid_cls:
            raise ValueError("FSAFHead: the classification loss must be sigmoid-based (loss_cls.use_sigmoid = true)")

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        self.cls_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs, self.conv_cfg,
                                    self.norm_cfg)
        self.reg_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs, self.conv_cfg,
                                    self.norm_cfg)
        self.retina_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 3, padding=1)
        self.retina_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.box_dim, 3, padding=1)

    def init_weights(self) -> None:
        """Normal(0, 0.01) convs; ``retina_cls`` biased to a 0.01 foreground prior and ``retina_reg`` to 0.25
        so that the first boxes have an area."""
        super().init_weights()
        normal_init(self.retina_cls, std=0.01, bias=bias_init_with_prob(0.01))
        normal_init(self.retina_reg, std=0.01, bias=0.25)

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """(cls_score (N, A*C, H, W), bbox_pred (N, A*4, H, W)); the box sides are non-negative (ReLU)."""
        cls_feat, reg_feat = forward_towers(x, self.cls_convs, self.reg_convs)
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat).relu()

    # -- targets ----------------------------------------------------------------------------
    def adjust_targets(self, targets: DenseTargets, assign_result: AssignResult, inside_inds: Tensor) -> DenseTargets:
        """Per-class label weights (P, C), zero for the (anchor, class) pairs the assigner shadows."""
        weights = targets.label_weights[:, None].repeat(1, self.cls_out_channels)
        shadowed = getattr(assign_result, "shadowed_labels", None)
        if shadowed is not None and shadowed.numel() > 0:
            weights[inside_inds[shadowed[:, 0]], shadowed[:, 1]] = 0.0
        targets.label_weights = weights
        return targets

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Element-wise losses on every level, reweighted by online feature selection (see the class)."""
        num_images = len(batch.metas)
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, self.box_dim).reshape(-1, self.box_dim).clamp(min=1e-4)
        boxes = self.bbox_coder.decode(priors.flat.repeat(num_images, 1), reg)
        cls_loss = self.loss_cls(cls, targets.labels, targets.label_weights, reduction_override="none")
        box_loss = self.loss_bbox(boxes, targets.bbox_targets, targets.bbox_weights, reduction_override="none")
        if cls_loss.shape != cls.shape or box_loss.shape != cls.shape[:1]:
            raise ValueError("FSAFHead: loss_cls must give (P, C) and loss_bbox (P,) element-wise losses")

        pos = torch.zeros(cls.shape[0], dtype=torch.bool, device=cls.device)
        pos[targets.pos_inds] = True
        gt_of = self.batch_gt_indices(targets.assigned_gt_inds, pos, batch, sum(priors.num_per_level))
        level_of = priors.level_ids.repeat(num_images)
        with torch.no_grad():
            per_prior = cls_loss.sum(dim=1) + box_loss
            best_level = self.cheapest_levels(per_prior[pos], gt_of[pos], level_of[pos], len(priors.per_level),
                                              sum(len(gt) for gt in batch.gt))
        keep = pos.clone()
        pos_rows = targets.pos_inds
        keep[pos_rows[best_level[gt_of[pos_rows]] != level_of[pos_rows]]] = False
        dropped = pos & ~keep
        cls_weight = torch.ones_like(cls_loss)
        cls_weight[dropped, targets.labels[dropped]] = 0.0
        num_pos = keep.sum().float()
        avg_factor = num_pos if num_pos > 0 else num_pos + targets.neg_inds.numel()
        return {
            "loss_cls": (cls_loss * cls_weight).sum() / avg_factor,
            "loss_bbox": (box_loss * keep).sum() / avg_factor,
            "num_pos": num_pos / num_images,
            "pos_recall": self.pos_recall(cls[keep], targets.labels[keep]),
        }

    @staticmethod
    def batch_gt_indices(assigned_gt_inds: Tensor, pos: Tensor, batch: Batch, priors_per_image: int) -> Tensor:
        """(N*P,) index of each positive's object among all objects of the batch, -1 elsewhere."""
        counts = torch.tensor([len(gt) for gt in batch.gt], device=pos.device)
        offsets = torch.cumsum(counts, 0) - counts
        image_of = torch.arange(pos.numel(), device=pos.device) // priors_per_image
        return torch.where(pos, assigned_gt_inds - 1 + offsets[image_of], torch.full_like(assigned_gt_inds, -1))

    @staticmethod
    def cheapest_levels(losses: Tensor, gt_of: Tensor, level_of: Tensor, num_levels: int, num_gts: int) -> Tensor:
        """(num_gts,) level where each object's positives (``losses`` with their object and level) have the
        lowest mean loss; levels without positives of an object are never chosen."""
        pairs = level_of * num_gts + gt_of
        sums = losses.new_zeros(num_levels * num_gts).index_add_(0, pairs, losses)
        counts = torch.bincount(pairs, minlength=num_levels * num_gts)
        means = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, _NO_LOSS))
        return means.view(num_levels, num_gts).argmin(dim=0)

    def pos_recall(self, cls_logits: Tensor, labels: Tensor) -> Tensor:
        """Percent of positives whose best-scoring class is their label (and scores above ``score_threshold``)."""
        with torch.no_grad():
            if labels.numel() == 0:
                return cls_logits.new_zeros(())
            best, best_class = cls_logits.sigmoid().max(dim=1)
            correct = best_class == labels
            if self.score_threshold is not None:
                correct &= best > self.score_threshold
            return correct.float().sum() * (100.0 / labels.numel())
