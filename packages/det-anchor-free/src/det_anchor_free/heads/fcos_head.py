"""FCOSHead (Tian et al. 2019): per-point classes, distances to the box sides and centerness."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_common.heads import AnchorFreeHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import Scale, normal_init
from detcore.errors import ConfigError
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

INF = 1e8
_REGRESS_RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))
_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
_LOSS_BBOX = {"type": "IoULoss", "loss_weight": 1.0}
_LOSS_CENTERNESS = {"type": "CrossEntropyLoss", "use_sigmoid": True, "loss_weight": 1.0}
_NORM = {"type": "GN", "num_groups": 32, "requires_grad": True}
_CODER = {"type": "DistancePointBBoxCoder"}
CENTERNESS_FUSIONS = ("multiply", "geometric_mean")


class FCOSHead(AnchorFreeHead):
    """FCOS head: ``cls_convs`` / ``reg_convs`` towers, ``conv_cls``, ``conv_reg``, ``conv_centerness``, ``scales``.

    A point is positive for the smallest ground truth that contains it (or, with
    ``center_sampling``, whose central region of ``center_sample_radius`` strides does) and
    whose largest side distance falls in the level's ``regress_ranges``. ``norm_on_bbox``
    regresses distances in units of the stride through a ReLU instead of ``exp``;
    ``centerness_on_reg`` predicts centerness from the regression tower (the "tricks" of `001`).
    ``test_cfg.centerness_fusion``: "multiply" (MMDetection: rank by class score, multiply by
    centerness before NMS) or "geometric_mean" (torchvision: rank by sqrt(score * centerness)).
    """

    test_cfg_keys = (*AnchorFreeHead.test_cfg_keys, "centerness_fusion")

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        regress_ranges: Sequence[Sequence[float]] = _REGRESS_RANGES,
        center_sampling: bool = False,
        center_sample_radius: float = 1.5,
        norm_on_bbox: bool = False,
        centerness_on_reg: bool = False,
        conv_bias: bool | str = "auto",
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = _NORM,
        dcn_on_last_conv: bool = False,
        point_offset: float = 0.5,
        bbox_coder: Mapping[str, Any] = _CODER,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        loss_centerness: Mapping[str, Any] = _LOSS_CENTERNESS,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        if len(regress_ranges) != len(strides):
            raise ConfigError(f"FCOSHead: {len(regress_ranges)} regress_ranges for {len(strides)} strides")
        fusion = (test_cfg or {}).get("centerness_fusion", "multiply")
        if fusion not in CENTERNESS_FUSIONS:
            raise ConfigError(f"FCOSHead: test_cfg.centerness_fusion must be one of {CENTERNESS_FUSIONS}, got {fusion!r}")
        self.regress_ranges = [(float(lo), float(hi)) for lo, hi in regress_ranges]
        self.center_sampling = center_sampling
        self.center_sample_radius = center_sample_radius
        self.norm_on_bbox = norm_on_bbox
        self.centerness_on_reg = centerness_on_reg
        self.centerness_fusion = fusion
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, stacked_convs=stacked_convs, strides=strides,
            conv_bias=conv_bias, conv_cfg=conv_cfg, norm_cfg=norm_cfg, dcn_on_last_conv=dcn_on_last_conv,
            point_offset=point_offset,
            bbox_coder=bbox_coder, loss_cls=loss_cls, loss_bbox=loss_bbox, train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.loss_centerness = build("losses", loss_centerness)

    def _init_layers(self) -> None:
        super()._init_layers()
        self.conv_centerness = nn.Conv2d(self.feat_channels, 1, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides)

    def init_weights(self) -> None:
        super().init_weights()
        normal_init(self.conv_centerness, std=0.01)

    # -- forward ----------------------------------------------------------------------------
    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """Class logits (N, C, H, W), distances (N, 4, H, W) and centerness logits (N, 1, H, W) of one level.

        Distances are in pixels at inference; in training they are in strides when ``norm_on_bbox``.
        """
        cls_score, bbox_pred, cls_feat, reg_feat = self.tower_outputs(x)
        centerness = self.conv_centerness(reg_feat if self.centerness_on_reg else cls_feat)
        bbox_pred = self.scales[level](bbox_pred).float()
        if self.norm_on_bbox:
            bbox_pred = bbox_pred.clamp(min=0)
            if not self.training:
                bbox_pred = bbox_pred * self.strides[level]
        else:
            bbox_pred = bbox_pred.exp()
        return cls_score, bbox_pred, centerness

    def level_scores(self, cls_logits: Tensor, factor_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.centerness_fusion == "geometric_mean" and factor_logits is not None:
            return torch.sqrt(cls_logits.sigmoid() * factor_logits.sigmoid()[:, None]), None
        return super().level_scores(cls_logits, factor_logits)

    # -- targets ----------------------------------------------------------------------------
    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """Label (background = num_classes), (left, top, right, bottom) target and centerness target of every point.

        Among the ground truths containing a point (or, with ``center_sampling``, whose central
        region does) and whose largest side distance falls in the point's level range, the smallest wins.
        """
        points = pred.priors
        num_points, num_gts = points.shape[0], len(gt)
        strides = points.new_tensor(self.strides)[pred.level_ids]
        ranges = points.new_tensor(self.regress_ranges)[pred.level_ids]
        if num_gts == 0:
            labels = points.new_full((num_points,), self.num_classes, dtype=torch.long)
            bbox_targets = points.new_zeros((num_points, 4))
            match = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
        else:
            boxes = gt.boxes.to(points.dtype)
            areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None].expand(num_points, num_gts)
            xs, ys = points[:, 0, None], points[:, 1, None]
            x1, y1, x2, y2 = (boxes[None, :, i] for i in range(4))
            distances = torch.stack([xs - x1, ys - y1, x2 - xs, y2 - ys], dim=-1)  # (P, G, 4)
            if self.center_sampling:
                radius = strides[:, None] * self.center_sample_radius
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                inner = torch.stack(
                    [
                        xs - torch.maximum(cx - radius, x1),
                        ys - torch.maximum(cy - radius, y1),
                        torch.minimum(cx + radius, x2) - xs,
                        torch.minimum(cy + radius, y2) - ys,
                    ],
                    dim=-1,
                )
                inside = inner.min(dim=-1).values > 0
            else:
                inside = distances.min(dim=-1).values > 0
            max_dist = distances.max(dim=-1).values
            in_range = (max_dist >= ranges[:, 0, None]) & (max_dist <= ranges[:, 1, None])
            areas = areas.masked_fill(~(inside & in_range), INF)
            min_area, match = areas.min(dim=1)
            labels = gt.labels[match].clone()
            labels[min_area == INF] = self.num_classes
            match[min_area == INF] = -1
            bbox_targets = distances[torch.arange(num_points, device=points.device), match.clamp(min=0)]
        if self.norm_on_bbox:
            bbox_targets = bbox_targets / strides[:, None]
        is_pos = labels < self.num_classes
        pos, neg = is_pos.nonzero().flatten(), (~is_pos).nonzero().flatten()
        centerness = points.new_zeros(num_points)
        centerness[pos] = self.centerness_target(bbox_targets[pos])
        return DenseTargets(
            labels=labels,
            label_weights=points.new_ones(num_points),
            bbox_targets=bbox_targets,
            bbox_weights=is_pos[:, None].expand(-1, 4).to(points.dtype),
            assigned_gt_inds=match + 1,
            pos_inds=pos,
            neg_inds=neg,
            avg_factor=float(pos.numel()),
            extras={"centerness": centerness},
        )

    @staticmethod
    def centerness_target(bbox_targets: Tensor) -> Tensor:
        """sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b)) of (P, 4) distances."""
        left_right = bbox_targets[:, [0, 2]]
        top_bottom = bbox_targets[:, [1, 3]]
        if left_right.numel() == 0:
            return left_right[:, 0]
        ratio = (left_right.min(dim=-1).values / left_right.max(dim=-1).values) * (
            top_bottom.min(dim=-1).values / top_bottom.max(dim=-1).values
        )
        return torch.sqrt(ratio)

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Focal loss over all points (averaged over positives), IoU loss weighted by the centerness
        target (averaged over its sum) and centerness BCE over the positives."""
        assert outs.score_factors is not None
        flat_cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        flat_reg = flatten_levels(outs.bbox_preds, 4).reshape(-1, 4)
        flat_ctr = flatten_levels(outs.score_factors, 1).reshape(-1)
        num_pos = max(targets.avg_factor, 1.0)
        loss_cls = self.loss_cls(flat_cls, targets.labels, avg_factor=num_pos)

        pos = targets.pos_inds
        pos_reg, pos_ctr = flat_reg[pos], flat_ctr[pos]
        if pos.numel() == 0:
            # keep the graph connected so every parameter receives a (zero) gradient
            return {"loss_cls": loss_cls, "loss_bbox": pos_reg.sum(), "loss_centerness": pos_ctr.sum()}
        ctr_targets = targets.extras["centerness"][pos]
        ctr_denorm = max(float(ctr_targets.sum().detach()), 1e-6)
        pos_points = priors.flat.repeat(len(batch.metas), 1)[pos]
        loss_bbox = self.loss_bbox(
            self.bbox_coder.decode(pos_points, pos_reg),
            self.bbox_coder.decode(pos_points, targets.bbox_targets[pos]),
            weight=ctr_targets,
            avg_factor=ctr_denorm,
        )
        loss_centerness = self.loss_centerness(pos_ctr, ctr_targets, avg_factor=num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_centerness": loss_centerness}
