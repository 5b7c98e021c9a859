"""RepPointsHead (Yang et al. 2019, "RepPoints: Point Set Representation for Object Detection").

Each location predicts a set of points (an initial set regressed from the location, then a refinement) instead of
a box; the points drive a deformable convolution (through ``detcore.ops``) whose features classify and refine,
and a point-to-box transform (moment, minmax, partial minmax) turns a set into a box for the losses and inference.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_common.heads import AnchorFreeHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import DeformConv2d, bias_init_with_prob, normal_init
from detcore.errors import ConfigError
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

TRANSFORMS = ("moment", "minmax", "partial_minmax")
_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
_LOSS_INIT = {"type": "SmoothL1Loss", "beta": 0.11, "loss_weight": 0.5}
_LOSS_REFINE = {"type": "SmoothL1Loss", "beta": 0.11, "loss_weight": 1.0}
#: the four points partial minmax reads
_PARTIAL_POINTS = 4


class RepPointsHead(AnchorFreeHead):
    """RepPoints head with MMDetection's parameter names (``cls_convs``, ``reg_convs``, ``reppoints_cls_conv``,
    ``reppoints_cls_out``, ``reppoints_pts_init_conv``, ``reppoints_pts_init_out``, ``reppoints_pts_refine_conv``,
    ``reppoints_pts_refine_out``, ``moment_transfer``), so its checkpoints load.

    Point sets are ``num_points`` (y, x) offsets from the location in units of its stride (an odd square: they
    are the taps of a sqrt(num_points)^2 deformable kernel). The initial set starts at the location
    (``center_init``) or on a square of ``point_base_scale`` strides; only ``gradient_mul`` of the gradient of
    the classification and refinement reaches it. Training: the initial boxes are assigned by
    ``train_cfg.init.assigner`` (``PointAssigner``) on the points, the refined boxes and classes by
    ``train_cfg.refine.assigner`` (``MaxIoUAssigner``) on the detached initial boxes; smooth L1 on boxes divided
    by ``point_base_scale`` strides, focal loss on the classes. ``transform_method``: "moment" (mean and
    std of the points, the half-size scaled by a learned ``moment_transfer``, whose gradient is ``moment_mul``),
    "minmax" (the extreme points), "partial_minmax" (the extremes of the first four points).
    ``use_grid_points`` (the paper's "BBox" baseline): both stages regress a box (centre shift, log size) from a
    square of ``point_base_scale`` strides, then from the initial box, and the points are the box's grid.
    """

    train_cfg_keys = ("init", "refine")

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        point_feat_channels: int = 256,
        stacked_convs: int = 3,
        num_points: int = 9,
        gradient_mul: float = 0.1,
        point_strides: Sequence[int] = (8, 16, 32, 64, 128),
        point_base_scale: int = 4,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_bbox_init: Mapping[str, Any] = _LOSS_INIT,
        loss_bbox_refine: Mapping[str, Any] = _LOSS_REFINE,
        use_grid_points: bool = False,
        center_init: bool = True,
        transform_method: str = "moment",
        moment_mul: float = 0.01,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        kernel = int(round(num_points ** 0.5))
        if kernel * kernel != num_points or kernel % 2 == 0:
            raise ConfigError(f"RepPointsHead: num_points must be an odd square (9, 25, ...), got {num_points}")
        if transform_method not in TRANSFORMS:
            raise ConfigError(f"RepPointsHead: transform_method must be one of {TRANSFORMS}, got {transform_method!r}")
        if transform_method == "partial_minmax" and num_points < _PARTIAL_POINTS:
            raise ConfigError("RepPointsHead: partial_minmax needs at least 4 points")
        self.num_points = num_points
        self.dcn_kernel = kernel
        self.point_feat_channels = point_feat_channels
        self.gradient_mul = gradient_mul
        self.point_base_scale = point_base_scale
        self.use_grid_points = use_grid_points
        self.center_init = center_init
        self.transform_method = transform_method
        self.moment_mul = moment_mul
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, stacked_convs=stacked_convs,
            strides=point_strides, conv_cfg=conv_cfg, norm_cfg=norm_cfg, point_offset=0.0,
            loss_cls=loss_cls, loss_bbox=loss_bbox_refine, train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.loss_bbox_init = build("losses", loss_bbox_init)
        self.loss_bbox_refine = self.loss_bbox
        if self.transform_method == "moment":
            self.moment_transfer = nn.Parameter(torch.zeros(2))
        # the kernel's taps as (dy, dx) pairs, row-major: the offsets a deformable conv adds to
        base = torch.arange(kernel, dtype=torch.float32) - kernel // 2
        taps = torch.stack([base.repeat_interleave(kernel), base.repeat(kernel)], dim=1)
        self.register_buffer("dcn_base_offset", taps.reshape(1, -1, 1, 1), persistent=False)
        self.init_assigner = self.refine_assigner = None
        self.init_on_points = True
        if train_cfg:
            for stage in ("init", "refine"):
                if "assigner" not in self.train_cfg.get(stage, {}):
                    raise ConfigError(f"RepPointsHead: train_cfg.{stage}.assigner is missing (see the RepPoints configs)")
            self.init_assigner = build("assigners", self.train_cfg["init"]["assigner"])
            # MMDetection's rule: a PointAssigner sees the points, any other assigner squares of point_base_scale strides
            self.init_on_points = self.train_cfg["init"]["assigner"]["type"] == "PointAssigner"
            self.refine_assigner = build("assigners", self.train_cfg["refine"]["assigner"])

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        def point_dconv() -> DeformConv2d:
            return DeformConv2d(self.feat_channels, self.point_feat_channels, self.dcn_kernel,
                                padding=self.dcn_kernel // 2)

        self.cls_convs = self._conv_tower()
        self.reg_convs = self._conv_tower()
        self.relu = nn.ReLU()
        pts_dim = 4 if self.use_grid_points else 2 * self.num_points
        self.reppoints_cls_conv = point_dconv()
        self.reppoints_cls_out = nn.Conv2d(self.point_feat_channels, self.cls_out_channels, 1)
        self.reppoints_pts_init_conv = nn.Conv2d(self.feat_channels, self.point_feat_channels, 3, padding=1)
        self.reppoints_pts_init_out = nn.Conv2d(self.point_feat_channels, pts_dim, 1)
        self.reppoints_pts_refine_conv = point_dconv()
        self.reppoints_pts_refine_out = nn.Conv2d(self.point_feat_channels, pts_dim, 1)

    def init_weights(self) -> None:
        """Normal(0, 0.01) convs (the point deformable convs keep their uniform init), ``reppoints_cls_out``
        biased to a 0.01 foreground prior."""
        self.init_conv_weights()
        normal_init(self.reppoints_cls_out, std=0.01, bias=bias_init_with_prob(0.01))

    # -- forward ----------------------------------------------------------------------------
    def forward(self, feats: Sequence[Tensor]) -> DenseOutputs:
        """Class logits as ``cls_scores``; the refined sets' boxes (x1, y1, x2, y2 offsets in strides) as
        ``bbox_preds`` (what inference decodes); the initial and refined point sets (N, 2 * num_points, H, W)
        as ``extras["pts_init"]`` and ``extras["pts_refine"]``."""
        per_level = [self.forward_single(x, level) for level, x in enumerate(feats)]
        cls_scores, pts_init, pts_refine = (list(maps) for maps in zip(*per_level))
        boxes = [self.points_to_boxes(pts) for pts in pts_refine]
        return DenseOutputs(cls_scores, boxes, extras={"pts_init": pts_init, "pts_refine": pts_refine})

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """(class logits (N, C, H, W), initial points, refined points (N, 2 * num_points, H, W) as y, x pairs)."""
        cls_feat, pts_feat = self.tower_features(x)
        base = self.dcn_base_offset.to(x.dtype)
        half = self.point_base_scale / 2
        pts_init = self.reppoints_pts_init_out(self.relu(self.reppoints_pts_init_conv(pts_feat)))
        if self.use_grid_points:
            box_init = x.new_tensor([-half, -half, half, half]).view(1, 4, 1, 1)
            pts_init, box_init = self.grid_from_regression(pts_init, box_init)
        elif not self.center_init:
            pts_init = pts_init + base / base.max() * half
        g = self.gradient_mul
        offset = (1 - g) * pts_init.detach() + g * pts_init - base
        cls_score = self.reppoints_cls_out(self.relu(self.reppoints_cls_conv(cls_feat, offset)))
        pts_refine = self.reppoints_pts_refine_out(self.relu(self.reppoints_pts_refine_conv(pts_feat, offset)))
        if self.use_grid_points:
            return cls_score, pts_init, self.grid_from_regression(pts_refine, box_init.detach())[0]
        return cls_score, pts_init, pts_refine + pts_init.detach()

    def grid_from_regression(self, deltas: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
        """The box representation of RepPoints' "BBox" rows: ``deltas`` (N, 4, H, W) move the centre of ``boxes``
        (x1, y1, x2, y2 in strides) by (dx, dy) sizes and scale its size by exp(dw, dh); the new box's
        sqrt(num_points)^2 grid points (y, x pairs, row-major, corners included) and the box itself."""
        center = (boxes[:, :2] + boxes[:, 2:]) / 2
        size = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-6)
        new_size = size * torch.exp(deltas[:, 2:])
        top_left = center + size * deltas[:, :2] - new_size / 2
        steps = torch.linspace(0.0, 1.0, self.dcn_kernel, dtype=deltas.dtype, device=deltas.device).view(1, -1, 1, 1)
        xs = top_left[:, 0:1] + new_size[:, 0:1] * steps  # (N, k, H, W)
        ys = top_left[:, 1:2] + new_size[:, 1:2] * steps
        k = self.dcn_kernel
        grid_x = xs[:, None].expand(-1, k, -1, -1, -1)  # [row i][column j] = x_j
        grid_y = ys[:, :, None].expand(-1, -1, k, -1, -1)  # [row i][column j] = y_i
        grid = torch.stack([grid_y, grid_x], dim=3).flatten(1, 3)
        return grid, torch.cat([top_left, top_left + new_size], dim=1)

    def points_to_boxes(self, pts: Tensor, y_first: bool = True) -> Tensor:
        """Boxes (N, 4, ...) x1, y1, x2, y2 of point sets (N, 2 * num_points, ...) given as (y, x) or (x, y) pairs."""
        pairs = pts.view(pts.shape[0], -1, 2, *pts.shape[2:])
        ys, xs = (pairs[:, :, 0], pairs[:, :, 1]) if y_first else (pairs[:, :, 1], pairs[:, :, 0])
        if self.transform_method == "partial_minmax":
            ys, xs = ys[:, :_PARTIAL_POINTS], xs[:, :_PARTIAL_POINTS]
        if self.transform_method in ("minmax", "partial_minmax"):
            return torch.cat([xs.min(dim=1, keepdim=True).values, ys.min(dim=1, keepdim=True).values,
                              xs.max(dim=1, keepdim=True).values, ys.max(dim=1, keepdim=True).values], dim=1)
        mean_y, mean_x = ys.mean(dim=1, keepdim=True), xs.mean(dim=1, keepdim=True)
        std_y, std_x = torch.std(ys - mean_y, dim=1, keepdim=True), torch.std(xs - mean_x, dim=1, keepdim=True)
        transfer = self.moment_transfer * self.moment_mul + self.moment_transfer.detach() * (1 - self.moment_mul)
        half_w, half_h = std_x * torch.exp(transfer[0]), std_y * torch.exp(transfer[1])
        return torch.cat([mean_x - half_w, mean_y - half_h, mean_x + half_w, mean_y + half_h], dim=1)

    # -- priors and inference ---------------------------------------------------------------
    def get_priors(self, outs: DenseOutputs) -> DensePriors:
        """Points ``x, y, stride_w, stride_h`` at ``k * stride`` (offset 0)."""
        first = outs.cls_scores[0]
        return DensePriors(self.prior_generator.grid_priors(outs.featmap_sizes, dtype=first.dtype,
                                                            device=first.device, with_stride=True))

    def decode(self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int]) -> Tensor:
        """Boxes in pixels: offsets (P, 4) in strides from the points (P, x y stride_w stride_h), clipped."""
        boxes = deltas * priors[:, 2:4].repeat(1, 2) + priors[:, :2].repeat(1, 2)
        limits = boxes.new_tensor([max_shape[1], max_shape[0]]).repeat(2)
        return torch.minimum(boxes.clamp(min=0), limits)

    # -- targets ----------------------------------------------------------------------------
    def assignment_inputs(self, priors: DensePriors, outs: DenseOutputs, image: int, meta: ImageMeta) -> Instances:
        """Points with strides and level ids, ``valid`` (points on the padded image) and ``init_boxes``: the
        image's detached initial point sets as boxes in pixels, which the refine assigner matches."""
        pred = super().assignment_inputs(priors, outs, image, meta)
        sizes, device = outs.featmap_sizes, pred.priors.device
        pred.valid = torch.cat(self.prior_generator.valid_flags(sizes, tuple(meta.pad_shape), device=device))
        with torch.no_grad():
            boxes = [self.points_to_boxes(pts[image:image + 1].detach()) for pts in outs.extras["pts_init"]]
            deltas = flatten_levels(boxes, 4)[0]
        pred.init_boxes = deltas * pred.priors[:, 2:4].repeat(1, 2) + pred.priors[:, :2].repeat(1, 2)
        return pred

    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """Refine stage in the main fields (labels, label weights 1 on positives and negatives, gt boxes in
        pixels on positives); the init stage's gt boxes and weights in ``extras`` ("init_bbox_targets",
        "init_bbox_weights"). Each stage's average factor is its number of positives (at least 1)."""
        if self.init_assigner is None or self.refine_assigner is None:
            raise ConfigError("RepPointsHead: training needs train_cfg.init.assigner and train_cfg.refine.assigner")
        points = pred.priors
        num_points = points.shape[0]
        valid = pred.valid.nonzero().flatten()
        shape = tuple(meta.img_shape)

        def assign(assigner: Any, priors: Tensor) -> Tensor:
            inds = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
            inds[valid] = assigner.assign(Instances(shape, priors=priors[valid]), gt, ignored).gt_inds.long()
            return inds

        boxes = gt.boxes.to(points.dtype)
        if self.init_on_points:
            init_inds = assign(self.init_assigner, points)
        else:
            half = self.point_base_scale * points[:, 2:4] / 2
            init_inds = assign(self.init_assigner, torch.cat([points[:, :2] - half, points[:, :2] + half], dim=1))
        init_pos = (init_inds > 0).nonzero().flatten()
        init_targets = points.new_zeros((num_points, 4))
        init_weights = points.new_zeros((num_points, 4))
        init_targets[init_pos] = boxes[init_inds[init_pos] - 1]
        init_weights[init_pos] = 1.0

        refine_inds = assign(self.refine_assigner, pred.init_boxes)
        pos = (refine_inds > 0).nonzero().flatten()
        neg = (refine_inds == 0).nonzero().flatten()
        labels = points.new_full((num_points,), self.num_classes, dtype=torch.long)
        label_weights = points.new_zeros(num_points)
        bbox_targets = points.new_zeros((num_points, 4))
        bbox_weights = points.new_zeros((num_points, 4))
        if pos.numel() > 0:
            labels[pos] = gt.labels[refine_inds[pos] - 1]
            bbox_targets[pos] = boxes[refine_inds[pos] - 1]
            bbox_weights[pos] = 1.0
            pos_weight = self.train_cfg["refine"].get("pos_weight", -1)
            label_weights[pos] = 1.0 if pos_weight <= 0 else float(pos_weight)
        label_weights[neg] = 1.0
        return DenseTargets(labels, label_weights, bbox_targets, bbox_weights, refine_inds, pos, neg,
                            avg_factor=float(max(pos.numel(), 1)),
                            extras={"init_bbox_targets": init_targets, "init_bbox_weights": init_weights})

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Focal loss over every weighted point and smooth L1 of the initial and refined boxes (in pixels, divided
        by ``point_base_scale`` strides) against their stage's targets, each averaged by its stage's positives."""
        num_images = len(batch.metas)
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        loss_cls = self.loss_cls(cls, targets.labels, targets.label_weights, avg_factor=targets.avg_factor)
        points = priors.flat.repeat(num_images, 1)
        norm = (self.point_base_scale * points[:, 2])[:, None]
        init_weights = targets.extras["init_bbox_weights"]
        init_avg = float(init_weights[:, 0].view(num_images, -1).sum(dim=1).clamp(min=1).sum())
        losses = {"loss_cls": loss_cls}
        for stage, loss_fn, target, weight, avg in (
            ("init", self.loss_bbox_init, targets.extras["init_bbox_targets"], init_weights, init_avg),
            ("refine", self.loss_bbox_refine, targets.bbox_targets, targets.bbox_weights, targets.avg_factor),
        ):
            pts = flatten_levels(outs.extras[f"pts_{stage}"], 2 * self.num_points).reshape(-1, self.num_points, 2)
            coords = pts.flip(-1) * points[:, None, 2:4] + points[:, None, :2]  # (y, x) in strides -> (x, y) pixels
            boxes = self.points_to_boxes(coords.reshape(-1, 2 * self.num_points), y_first=False)
            losses[f"loss_pts_{stage}"] = loss_fn(boxes / norm, target / norm, weight, avg_factor=avg)
        return losses
