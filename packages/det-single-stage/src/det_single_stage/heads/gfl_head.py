"""GFLHead (Li et al. 2020, "Generalized Focal Loss: Learning Qualified and Distributed Bounding Boxes for Dense
Object Detection"): ATSS-assigned anchors whose class score is trained to be the IoU of the box (Quality Focal
Loss) and whose four sides are each a distribution over ``reg_max + 1`` bins (Distribution Focal Loss), read out
by their integral."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from det_common.bbox import bbox_overlaps
from det_common.heads import AnchorHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import Scale, bias_init_with_prob, conv_tower, forward_towers, normal_init
from det_single_stage.layers import Integral
from detcore.registry import build
from detcore.structures import Batch

_ANCHORS = {
    "type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8, "scales_per_octave": 1,
    "strides": [8, 16, 32, 64, 128],
}
_CODER = {"type": "DistancePointBBoxCoder"}
_LOSS_CLS = {"type": "QualityFocalLoss", "use_sigmoid": True, "beta": 2.0, "loss_weight": 1.0}
_LOSS_DFL = {"type": "DistributionFocalLoss", "loss_weight": 0.25}
_LOSS_BBOX = {"type": "GIoULoss", "loss_weight": 2.0}
_NORM = {"type": "GN", "num_groups": 32, "requires_grad": True}


def anchor_centers(anchors: Tensor) -> Tensor:
    """(P, 2) centers of (P, 4) xyxy anchors."""
    return (anchors[:, :2] + anchors[:, 2:]) / 2


class GFLHead(AnchorHead):
    """``cls_convs`` / ``reg_convs`` (GN towers), ``gfl_cls``, ``gfl_reg`` (4 x (``reg_max`` + 1) bin logits per
    anchor, times a per-level ``scales``), ``integral`` (MMDetection's names, so its checkpoints load).

    Distances are in strides from the anchor center; the targets are the ground-truth boxes of the anchors
    ``train_cfg.assigner`` (ATSS) makes positive. Losses: QFL over every anchor against the IoU of each positive's
    decoded box (averaged over positives), GIoU and DFL on the positives weighted by their best class score
    (averaged over that weight's sum).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stacked_convs: int = 4,
        feat_channels: int = 256,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = _NORM,
        reg_max: int = 16,
        anchor_generator: Mapping[str, Any] = _ANCHORS,
        bbox_coder: Mapping[str, Any] = _CODER,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_dfl: Mapping[str, Any] = _LOSS_DFL,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.stacked_convs = stacked_convs
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.reg_max = reg_max
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, anchor_generator=anchor_generator,
            bbox_coder=bbox_coder, reg_decoded_bbox=True, loss_cls=loss_cls, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.loss_dfl = build("losses", loss_dfl)
        self.integral = Integral(reg_max)

    @property
    def dist_channels(self) -> int:
        """Regression outputs per anchor: 4 sides x (reg_max + 1) bins."""
        return 4 * (self.reg_max + 1)

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        self.cls_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs,
                                    self.conv_cfg, self.norm_cfg)
        self.reg_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs,
                                    self.conv_cfg, self.norm_cfg)
        self.gfl_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 3, padding=1)
        self.gfl_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.dist_channels, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.prior_generator.strides)

    def init_weights(self) -> None:
        """Normal(0, 0.01) convs; ``gfl_cls`` bias for a 0.01 foreground prior."""
        super().init_weights()
        normal_init(self.gfl_cls, std=0.01, bias=bias_init_with_prob(0.01))

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """Class logits (N, A*C, H, W) and side-distribution logits (N, A*4*(reg_max+1), H, W) of one level."""
        cls_feat, reg_feat = forward_towers(x, self.cls_convs, self.reg_convs)
        return self.gfl_cls(cls_feat), self.scales[level](self.gfl_reg(reg_feat)).float()

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """QFL against each positive's IoU (averaged over positives); GIoU and DFL (distances in strides, the
        4 sides averaged) weighted by the positives' best class score, averaged over its sum (at least 1)."""
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, self.dist_channels).reshape(-1, self.dist_channels)
        num_images = len(batch.metas)
        quality = cls.new_zeros(cls.shape[0])
        pos = targets.pos_inds
        losses: dict[str, Tensor] = {}
        if pos.numel() > 0:
            strides = cls.new_tensor([s[0] for s in self.prior_generator.strides])[priors.level_ids]
            pos_strides = strides.repeat(num_images)[pos][:, None]
            pos_centers = anchor_centers(priors.flat.repeat(num_images, 1)[pos]) / pos_strides
            weights = cls.detach().sigmoid().max(dim=1).values[pos]
            pos_dist = reg[pos]
            pos_boxes = self.bbox_coder.decode(pos_centers, self.integral(pos_dist))
            gt_boxes = targets.bbox_targets[pos] / pos_strides
            quality[pos] = bbox_overlaps(pos_boxes.detach(), gt_boxes, is_aligned=True)
            side_targets = self.bbox_coder.encode(pos_centers, gt_boxes, self.reg_max).reshape(-1)
            weight_sum = max(float(weights.sum()), 1.0)
            losses["loss_bbox"] = self.loss_bbox(pos_boxes, gt_boxes, weight=weights, avg_factor=1.0) / weight_sum
            losses["loss_dfl"] = self.loss_dfl(
                pos_dist.reshape(-1, self.reg_max + 1), side_targets,
                weight=weights[:, None].expand(-1, 4).reshape(-1), avg_factor=4.0,
            ) / weight_sum
        else:
            losses["loss_bbox"] = reg.sum() * 0
            losses["loss_dfl"] = reg.sum() * 0
        loss_cls = self.loss_cls(cls, (targets.labels, quality), targets.label_weights, avg_factor=targets.avg_factor)
        return {"loss_cls": loss_cls, **losses}

    # -- inference --------------------------------------------------------------------------
    def level_outputs(self, outs: DenseOutputs, level: int, image: int) -> tuple[Tensor, Tensor, None]:
        """Class logits and the expected side distances in pixels (integral times the level's stride)."""
        logits = outs.cls_scores[level][image].detach().permute(1, 2, 0).reshape(-1, self.cls_out_channels)
        dist = outs.bbox_preds[level][image].detach().permute(1, 2, 0).reshape(-1, self.dist_channels)
        return logits, self.integral(dist) * self.prior_generator.strides[level][0], None

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int]) -> Tensor:
        """Boxes from the anchors' centers and (left, top, right, bottom) distances, clipped to ``max_shape``."""
        return self.bbox_coder.decode(anchor_centers(priors), deltas, max_shape=max_shape)
