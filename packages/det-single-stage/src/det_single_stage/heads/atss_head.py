"""ATSSHead (Zhang et al. 2020, "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive
Training Sample Selection"): one anchor per location, GroupNorm towers, a centerness branch, and a GIoU box loss
weighted by the centerness of each positive anchor."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from det_common.bbox import anchor_centerness
from det_common.heads import AnchorHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import Scale, bias_init_with_prob, conv_tower, forward_towers, normal_init
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

_ANCHORS = {
    "type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8, "scales_per_octave": 1,
    "strides": [8, 16, 32, 64, 128],
}
_CODER = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [0.1, 0.1, 0.2, 0.2]}
_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
_LOSS_BBOX = {"type": "GIoULoss", "loss_weight": 2.0}
_LOSS_CENTERNESS = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
_NORM = {"type": "GN", "num_groups": 32, "requires_grad": True}


class ATSSHead(AnchorHead):
    """``cls_convs`` / ``reg_convs`` (GN towers), ``atss_cls``, ``atss_reg`` (times a per-level ``scales``),
    ``atss_centerness`` (MMDetection's names, so its checkpoints load).

    Targets come from ``train_cfg.assigner`` (``ATSSAssigner``) over the anchors inside the image. Losses:
    focal over every anchor, GIoU on decoded positives weighted by their centerness target (averaged over
    its sum), centerness BCE over the positives; at test time the centerness multiplies the class scores.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stacked_convs: int = 4,
        feat_channels: int = 256,
        pred_kernel_size: int = 3,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = _NORM,
        anchor_generator: Mapping[str, Any] = _ANCHORS,
        bbox_coder: Mapping[str, Any] = _CODER,
        reg_decoded_bbox: bool = True,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        loss_centerness: Mapping[str, Any] = _LOSS_CENTERNESS,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.stacked_convs = stacked_convs
        self.pred_kernel_size = pred_kernel_size
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, anchor_generator=anchor_generator,
            bbox_coder=bbox_coder, reg_decoded_bbox=reg_decoded_bbox, loss_cls=loss_cls, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.loss_centerness = build("losses", loss_centerness)

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        self.cls_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs,
                                    self.conv_cfg, self.norm_cfg)
        self.reg_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs,
                                    self.conv_cfg, self.norm_cfg)
        k, pad = self.pred_kernel_size, self.pred_kernel_size // 2
        self.atss_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, k, padding=pad)
        self.atss_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.box_dim, k, padding=pad)
        self.atss_centerness = nn.Conv2d(self.feat_channels, self.num_base_priors, k, padding=pad)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.prior_generator.strides)

    def init_weights(self) -> None:
        """Normal(0, 0.01) convs; ``atss_cls`` bias for a 0.01 foreground prior."""
        super().init_weights()
        normal_init(self.atss_cls, std=0.01, bias=bias_init_with_prob(0.01))

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """Class logits, box deltas (times the level's scale) and centerness logits of one level."""
        cls_feat, reg_feat = forward_towers(x, self.cls_convs, self.reg_convs)
        bbox_pred = self.scales[level](self.atss_reg(reg_feat)).float()
        return self.atss_cls(cls_feat), bbox_pred, self.atss_centerness(reg_feat)

    # -- targets ----------------------------------------------------------------------------
    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """AnchorHead's targets plus ``extras["centerness"]``: each positive anchor's centerness in its gt box."""
        targets = super().get_targets_single(pred, gt, ignored, meta)
        centerness = pred.priors.new_zeros(pred.priors.shape[0])
        pos = targets.pos_inds
        if pos.numel() > 0:
            gt_boxes = gt.boxes.to(centerness.dtype)[targets.assigned_gt_inds[pos] - 1]
            centerness[pos] = anchor_centerness(pred.priors[pos], gt_boxes)
        targets.extras["centerness"] = centerness
        return targets

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Focal loss (averaged over positives), centerness-weighted GIoU (averaged over the centerness
        targets' sum, at least 1) and centerness BCE (averaged over positives)."""
        assert outs.score_factors is not None
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, self.box_dim).reshape(-1, self.box_dim)
        ctr = flatten_levels(outs.score_factors, 1).reshape(-1)
        num_pos = targets.avg_factor
        loss_cls = self.loss_cls(cls, targets.labels, targets.label_weights, avg_factor=num_pos)
        pos = targets.pos_inds
        if pos.numel() == 0:
            # zero losses that keep every branch in the graph
            return {"loss_cls": loss_cls, "loss_bbox": reg.sum() * 0, "loss_centerness": ctr.sum() * 0}
        ctr_targets = targets.extras["centerness"][pos]
        pos_anchors = priors.flat.repeat(len(batch.metas), 1)[pos]
        pos_boxes = self.bbox_coder.decode(pos_anchors, reg[pos])
        gt_boxes = targets.bbox_targets[pos]
        if not self.reg_decoded_bbox:
            gt_boxes = self.bbox_coder.decode(pos_anchors, gt_boxes)
        loss_bbox = self.loss_bbox(pos_boxes, gt_boxes, weight=ctr_targets, avg_factor=1.0)
        loss_bbox = loss_bbox / max(float(ctr_targets.sum().detach()), 1.0)
        loss_centerness = self.loss_centerness(ctr[pos], ctr_targets, avg_factor=num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_centerness}
