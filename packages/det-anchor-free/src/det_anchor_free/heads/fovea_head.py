"""FoveaHead: the head of FoveaBox (Kong et al. 2020, "FoveaBox: Beyound Anchor-based Object Detection").

Each pyramid level is responsible for objects whose size sqrt(w * h) falls in its ``scale_ranges``; a point
is positive when it lies in the object's "fovea", the central ``sigma`` fraction of the box on that level.
Boxes are regressed as log distances to the four sides in units of the level's ``base_edge_list`` length.
With ``with_deform`` the classification branch sees features aligned to the predicted box (``FeatureAlign``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_common.heads import AnchorFreeHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import ConvModule, DeformConv2d, normal_init
from detcore.errors import ConfigError
from detcore.structures import Batch, ImageMeta, Instances

INF = 1e8
_BASE_EDGES = (16, 32, 64, 128, 256)
_SCALE_RANGES = ((8, 32), (16, 64), (32, 128), (64, 256), (128, 512))
_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 1.5, "alpha": 0.4, "loss_weight": 1.0}
_LOSS_BBOX = {"type": "SmoothL1Loss", "beta": 0.11, "loss_weight": 1.0}


class FeatureAlign(nn.Module):
    """Deformable conv whose offsets come from the predicted box (exp of the log distances, 1x1 ``conv_offset``),
    so the classifier sees features spread like the box (FoveaBox's feature alignment)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, deform_groups: int = 4) -> None:
        super().__init__()
        self.conv_offset = nn.Conv2d(4, deform_groups * kernel_size * kernel_size * 2, 1, bias=False)
        self.conv_adaption = DeformConv2d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) // 2,
                                          deform_groups=deform_groups)
        self.relu = nn.ReLU(inplace=True)

    def init_weights(self) -> None:
        """Offsets from Normal(0, 0.1), the deformable conv from Normal(0, 0.01) (MMDetection's init)."""
        normal_init(self.conv_offset, std=0.1)
        nn.init.normal_(self.conv_adaption.weight, std=0.01)

    def forward(self, x: Tensor, shape: Tensor) -> Tensor:
        return self.relu(self.conv_adaption(x, self.conv_offset(shape)))


class FoveaHead(AnchorFreeHead):
    """FoveaBox head with MMDetection's parameter names (``reg_convs``, ``conv_reg``, ``cls_convs``, ``conv_cls``,
    ``feature_adaption``). Priors are the points with their level's base edge as a third column, which the
    box decoding reads. Losses: focal over every point (averaged over positives + images) and smooth L1 on
    the positives' log distances (averaged over positives)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (4, 8, 16, 32, 64),
        base_edge_list: Sequence[int] = _BASE_EDGES,
        scale_ranges: Sequence[Sequence[float]] = _SCALE_RANGES,
        sigma: float = 0.4,
        with_deform: bool = False,
        deform_groups: int = 4,
        conv_bias: bool | str = "auto",
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        if not len(base_edge_list) == len(scale_ranges) == len(strides):
            raise ConfigError(f"FoveaHead: {len(strides)} strides need as many base_edge_list ({len(base_edge_list)}) "
                              f"and scale_ranges ({len(scale_ranges)}) entries")
        self.base_edge_list = [float(e) for e in base_edge_list]
        self.scale_ranges = [(float(lo), float(hi)) for lo, hi in scale_ranges]
        self.sigma = sigma
        self.with_deform = with_deform
        self.deform_groups = deform_groups
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, stacked_convs=stacked_convs, strides=strides,
            conv_bias=conv_bias, conv_cfg=conv_cfg, norm_cfg=norm_cfg, loss_cls=loss_cls, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        self.reg_convs = self._conv_tower()
        self.conv_reg = nn.Conv2d(self.feat_channels, 4, 3, padding=1)
        if not self.with_deform:
            self.cls_convs = self._conv_tower()
            self.conv_cls = nn.Conv2d(self.feat_channels, self.cls_out_channels, 3, padding=1)
            return
        wide = self.feat_channels * 4
        bias = self.norm_cfg is None
        self.cls_convs = nn.ModuleList([
            ConvModule(self.feat_channels, wide, 3, padding=1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, bias=bias),
            ConvModule(wide, wide, 1, conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg, bias=bias),
        ])
        self.feature_adaption = FeatureAlign(self.feat_channels, self.feat_channels, 3, self.deform_groups)
        self.conv_cls = nn.Conv2d(wide, self.cls_out_channels, 3, padding=1)

    def init_weights(self) -> None:
        super().init_weights()
        if self.with_deform:
            self.feature_adaption.init_weights()

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor]:
        """(class logits (N, C, H, W), log distances in base edges (N, 4, H, W)) of one level."""
        reg_feat = x
        for conv in self.reg_convs:
            reg_feat = conv(reg_feat)
        bbox_pred = self.conv_reg(reg_feat)
        cls_feat = self.feature_adaption(x, bbox_pred.exp()) if self.with_deform else x
        for conv in self.cls_convs:
            cls_feat = conv(cls_feat)
        return self.conv_cls(cls_feat), bbox_pred

    def get_priors(self, outs: DenseOutputs) -> DensePriors:
        """Points (x, y) of every level with the level's base edge as a third column (read by ``decode``)."""
        points = super().get_priors(outs).per_level
        return DensePriors([torch.cat([p, p.new_full((p.shape[0], 1), edge)], dim=1)
                            for p, edge in zip(points, self.base_edge_list)])

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int]) -> Tensor:
        """Boxes from points (x, y, base edge) and log distances, clamped to [0, size - 1] as MMDetection does."""
        distances = deltas.exp() * priors[:, 2:3]
        x, y = priors[:, 0], priors[:, 1]
        height, width = max_shape
        return torch.stack([
            (x - distances[:, 0]).clamp(min=0, max=width - 1),
            (y - distances[:, 1]).clamp(min=0, max=height - 1),
            (x + distances[:, 2]).clamp(min=0, max=width - 1),
            (y + distances[:, 3]).clamp(min=0, max=height - 1),
        ], dim=-1)

    # -- targets ----------------------------------------------------------------------------
    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """A point is positive for the smallest ground truth whose size fits its level's scale range and whose
        fovea (the central ``sigma`` of the box, in whole cells of the level) holds it; its target is the log of
        the distances to that box's sides in base edges, clamped to [1/16, 16]."""
        points, levels = pred.priors, pred.level_ids
        num_points = points.shape[0]
        labels = points.new_full((num_points,), self.num_classes, dtype=torch.long)
        bbox_targets = points.new_zeros((num_points, 4))
        match = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
        if len(gt) > 0:
            boxes = gt.boxes.to(points.dtype)
            sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
            strides = points.new_tensor(self.strides)[levels][:, None]
            ranges = points.new_tensor(self.scale_ranges)[levels]
            edges = points.new_tensor(self.base_edge_list)[levels]
            # cell indices of the points and the last column / row of their level
            col, row = points[:, 0:1] / strides - 0.5, points[:, 1:2] / strides - 0.5
            last_col = torch.zeros(len(self.strides), dtype=points.dtype, device=points.device)
            last_row = torch.zeros_like(last_col)
            last_col.scatter_reduce_(0, levels, col[:, 0], reduce="amax", include_self=False)
            last_row.scatter_reduce_(0, levels, row[:, 0], reduce="amax", include_self=False)
            last_col, last_row = last_col[levels][:, None], last_row[levels][:, None]
            scaled = boxes[None] / strides[..., None]  # (P, G, 4) in cells
            half_w = 0.5 * (scaled[..., 2] - scaled[..., 0])
            half_h = 0.5 * (scaled[..., 3] - scaled[..., 1])
            left = torch.ceil(scaled[..., 0] + (1 - self.sigma) * half_w - 0.5).clamp(min=0).minimum(last_col)
            right = torch.floor(scaled[..., 0] + (1 + self.sigma) * half_w - 0.5).clamp(min=0).minimum(last_col)
            top = torch.ceil(scaled[..., 1] + (1 - self.sigma) * half_h - 0.5).clamp(min=0).minimum(last_row)
            bottom = torch.floor(scaled[..., 1] + (1 + self.sigma) * half_h - 0.5).clamp(min=0).minimum(last_row)
            in_fovea = (col >= left) & (col <= right) & (row >= top) & (row <= bottom)
            in_range = (sizes[None] >= ranges[:, 0:1]) & (sizes[None] <= ranges[:, 1:2])
            candidate_sizes = sizes[None].expand(num_points, -1).masked_fill(~(in_fovea & in_range), INF)
            smallest, best = candidate_sizes.min(dim=1)
            positive = smallest < INF
            match = torch.where(positive, best, torch.full_like(best, -1))
            labels[positive] = gt.labels[best[positive]]
            box, xs, ys = boxes[best[positive]], points[positive, 0], points[positive, 1]
            sides = torch.stack([xs - box[:, 0], ys - box[:, 1], box[:, 2] - xs, box[:, 3] - ys], dim=1)
            bbox_targets[positive] = torch.log((sides / edges[positive][:, None]).clamp(min=1.0 / 16, max=16.0))
        is_pos = labels < self.num_classes
        pos, neg = is_pos.nonzero().flatten(), (~is_pos).nonzero().flatten()
        return DenseTargets(
            labels=labels, label_weights=points.new_ones(num_points), bbox_targets=bbox_targets,
            bbox_weights=is_pos[:, None].expand(-1, 4).to(points.dtype), assigned_gt_inds=match + 1,
            pos_inds=pos, neg_inds=neg, avg_factor=float(pos.numel()),
        )

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Focal loss over every point averaged over (positives + images); smooth L1 on the positives' log
        distances averaged over the positives."""
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, 4).reshape(-1, 4)
        pos = targets.pos_inds
        loss_cls = self.loss_cls(cls, targets.labels, avg_factor=pos.numel() + len(batch.metas))
        if pos.numel() == 0:
            return {"loss_cls": loss_cls, "loss_bbox": reg.sum() * 0}
        loss_bbox = self.loss_bbox(reg[pos], targets.bbox_targets[pos], torch.ones_like(reg[pos]),
                                   avg_factor=pos.numel())
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox}
