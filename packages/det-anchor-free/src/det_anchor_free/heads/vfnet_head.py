"""VFNetHead: the head of VarifocalNet (Zhang et al. 2021, "VarifocalNet: An IoU-aware Dense Object Detector", `002`).

FCOS without its centerness branch, trained on ATSS positives: an initial box per point, the star-shaped box
feature (a 3x3 deformable convolution sampling the point, the box's four side midpoints and its corners)
that both refines the box (four scaling factors of the initial distances) and predicts the IoU-aware
classification score (IACS), trained with the varifocal loss against the IoU of the refined box.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_anchor_free.heads.fcos_head import FCOSHead
from det_common.bbox import bbox_overlaps
from det_common.heads import AnchorFreeHead, DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.layers import ConvModule, DeformConv2d, Scale, bias_init_with_prob, normal_init
from det_common.priors import anchor_inside_flags
from detcore.engine.dist import all_reduce_mean
from detcore.errors import ConfigError
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

INF = 1e8
_REGRESS_RANGES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, INF))
_LOSS_VFL = {"type": "VarifocalLoss", "use_sigmoid": True, "alpha": 0.75, "gamma": 2.0, "iou_weighted": True,
             "loss_weight": 1.0}
_LOSS_FL = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
_LOSS_BBOX = {"type": "GIoULoss", "loss_weight": 1.5}
_LOSS_BBOX_REFINE = {"type": "GIoULoss", "loss_weight": 2.0}
_NORM = {"type": "GN", "num_groups": 32, "requires_grad": True}
_ANCHORS = {"type": "AnchorGenerator", "ratios": [1.0], "octave_base_scale": 8, "scales_per_octave": 1,
            "center_offset": 0.0, "strides": [8, 16, 32, 64, 128]}
_CODER = {"type": "DistancePointBBoxCoder"}
BBOX_NORM_TYPES = ("reg_denom", "stride")
#: the star: rows (top, center, bottom) x columns (left, center, right) of a 3x3 deformable kernel
_STAR_KERNEL = 3


class VFNetHead(FCOSHead):
    """VarifocalNet head with MMDetection's parameter names (``cls_convs``, ``reg_convs``, ``vfnet_reg_conv``,
    ``vfnet_reg``, ``scales``, ``vfnet_reg_refine_dconv``, ``vfnet_reg_refine``, ``scales_refine``,
    ``vfnet_cls_dconv``, ``vfnet_cls``), so its checkpoints load.

    Initial distances are ``exp(scale * x)`` times the level's regression denominator (``bbox_norm_type``
    "reg_denom": the upper end of its regress range, twice the previous one for the last level) or its
    stride. The refined distances multiply the initial ones (detached) by ``exp(scale_refine * y)``.
    Gradients from the star offsets into the initial box are scaled by ``gradient_mul``.

    Training (``use_atss``): ATSS (``train_cfg.assigner``) picks positives among square anchors of
    ``anchor_generator`` centred on the points; without it, FCOS's rule. Losses: GIoU on the initial
    and on the refined boxes, each weighted by its IoU with the target; the varifocal loss (``use_vfl``,
    else ``loss_cls_fl``) against the refined box's IoU at the positive's class. Inference (`002` §5):
    the IACS ranks and scores the refined boxes, no centerness; thresholds and NMS from ``test_cfg``.
    """

    test_cfg_keys = AnchorFreeHead.test_cfg_keys

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 3,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        regress_ranges: Sequence[Sequence[float]] = _REGRESS_RANGES,
        center_sampling: bool = False,
        center_sample_radius: float = 1.5,
        sync_num_pos: bool = True,
        gradient_mul: float = 0.1,
        bbox_norm_type: str = "reg_denom",
        use_vfl: bool = True,
        loss_cls: Mapping[str, Any] = _LOSS_VFL,
        loss_cls_fl: Mapping[str, Any] = _LOSS_FL,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        loss_bbox_refine: Mapping[str, Any] = _LOSS_BBOX_REFINE,
        use_atss: bool = True,
        reg_decoded_bbox: bool = True,
        anchor_generator: Mapping[str, Any] = _ANCHORS,
        dcn_on_last_conv: bool = False,
        conv_bias: bool | str = "auto",
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = _NORM,
        bbox_coder: Mapping[str, Any] = _CODER,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        if bbox_norm_type not in BBOX_NORM_TYPES:
            raise ConfigError(f"VFNetHead: bbox_norm_type must be one of {BBOX_NORM_TYPES}, got {bbox_norm_type!r}")
        if not reg_decoded_bbox:
            raise ConfigError("VFNetHead: the GIoU box losses need decoded boxes (reg_decoded_bbox = true)")
        if len(regress_ranges) < 2:
            raise ConfigError("VFNetHead: needs at least two regress_ranges (the last level's denominator doubles the previous)")
        anchor_strides = list(anchor_generator.get("strides", strides))
        if [int(s) for s in anchor_strides] != [int(s) for s in strides]:
            raise ConfigError(f"VFNetHead: anchor_generator.strides {anchor_strides} must equal strides {list(strides)}")
        self.gradient_mul = gradient_mul
        self.bbox_norm_type = bbox_norm_type
        self.reg_denoms = [float(r[-1]) for r in regress_ranges]
        self.reg_denoms[-1] = self.reg_denoms[-2] * 2
        self.sync_num_pos = sync_num_pos
        self.use_vfl = use_vfl
        self.use_atss = use_atss
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, stacked_convs=stacked_convs, strides=strides,
            regress_ranges=regress_ranges, center_sampling=center_sampling,
            center_sample_radius=center_sample_radius, conv_bias=conv_bias, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
            dcn_on_last_conv=dcn_on_last_conv,
            # ATSS's anchors are centred on the points: both at anchor_generator.center_offset
            point_offset=float(anchor_generator.get("center_offset", 0.0)) if use_atss else 0.5,
            bbox_coder=bbox_coder, loss_cls=loss_cls if use_vfl else loss_cls_fl, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.reg_decoded_bbox = reg_decoded_bbox
        self.loss_bbox_refine = build("losses", loss_bbox_refine)
        self.atss_prior_generator = build("prior_generators", anchor_generator)
        if self.atss_prior_generator.num_base_priors[0] != 1:
            raise ConfigError("VFNetHead: anchor_generator must give one anchor per location (one ratio, one scale)")
        self.assigner = build("assigners", self.train_cfg["assigner"]) if use_atss and train_cfg else None

    # -- layers -----------------------------------------------------------------------------
    def _init_layers(self) -> None:
        def star_dconv() -> DeformConv2d:
            return DeformConv2d(self.feat_channels, self.feat_channels, _STAR_KERNEL, padding=_STAR_KERNEL // 2)

        self.cls_convs = self._conv_tower()
        self.reg_convs = self._conv_tower()
        self.relu = nn.ReLU()
        self.vfnet_reg_conv = ConvModule(self.feat_channels, self.feat_channels, 3, padding=1, bias=self.conv_bias,
                                         conv_cfg=self.conv_cfg, norm_cfg=self.norm_cfg)
        self.vfnet_reg = nn.Conv2d(self.feat_channels, 4, 3, padding=1)
        self.scales = nn.ModuleList(Scale(1.0) for _ in self.strides)
        self.vfnet_reg_refine_dconv = star_dconv()
        self.vfnet_reg_refine = nn.Conv2d(self.feat_channels, 4, 3, padding=1)
        self.scales_refine = nn.ModuleList(Scale(1.0) for _ in self.strides)
        self.vfnet_cls_dconv = star_dconv()
        self.vfnet_cls = nn.Conv2d(self.feat_channels, self.cls_out_channels, 3, padding=1)

    def init_weights(self) -> None:
        """Normal(0, 0.01) convs (the star deformable convs keep their uniform init), ``vfnet_cls`` bias for
        a 0.01 prior."""
        self.init_conv_weights()
        normal_init(self.vfnet_cls, std=0.01, bias=bias_init_with_prob(0.01))

    # -- forward ----------------------------------------------------------------------------
    def forward(self, feats: Sequence[Tensor]) -> DenseOutputs:
        """IACS logits as ``cls_scores``, refined distances as ``bbox_preds`` (what inference decodes) and
        the initial distances as ``extras["bbox_preds_init"]``."""
        per_level = [self.forward_single(x, level) for level, x in enumerate(feats)]
        cls_scores, refined, initial = (list(maps) for maps in zip(*per_level))
        return DenseOutputs(cls_scores, refined, extras={"bbox_preds_init": initial})

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """(IACS logits (N, C, H, W), refined distances (N, 4, H, W), initial distances (N, 4, H, W)) in pixels."""
        cls_feat, reg_feat = self.tower_features(x)
        stride = self.strides[level]
        denom = self.reg_denoms[level] if self.bbox_norm_type == "reg_denom" else float(stride)
        bbox_init = self.scales[level](self.vfnet_reg(self.vfnet_reg_conv(reg_feat))).float().exp() * denom
        offset = self.star_dcn_offset(bbox_init, stride).to(reg_feat.dtype)
        reg_feat = self.relu(self.vfnet_reg_refine_dconv(reg_feat, offset))
        bbox_refine = self.scales_refine[level](self.vfnet_reg_refine(reg_feat)).float().exp() * bbox_init.detach()
        cls_score = self.vfnet_cls(self.relu(self.vfnet_cls_dconv(cls_feat, offset)))
        return cls_score, bbox_refine, bbox_init

    def star_dcn_offset(self, distances: Tensor, stride: int) -> Tensor:
        """Offsets (N, 18, H, W) moving a 3x3 kernel's taps onto the star of the boxes (l, t, r, b) (N, 4, H, W):
        row -1 / 0 / +1 to the top side / the point / the bottom side, column -1 / 0 / +1 to the left side /
        the point / the right side, in feature-map cells; (dy, dx) per tap, row-major (torchvision's layout).
        Only ``gradient_mul`` of the gradient reaches the initial box."""
        g = self.gradient_mul
        scaled = ((1 - g) * distances.detach() + g * distances) / stride
        left, top, right, bottom = scaled.unbind(dim=1)
        zero = torch.zeros_like(left)
        rows, cols = (-top, zero, bottom), (-left, zero, right)
        taps = []
        for i, dy in enumerate(rows):
            for j, dx in enumerate(cols):
                taps += [dy - (i - 1), dx - (j - 1)]
        return torch.stack(taps, dim=1)

    def level_scores(self, cls_logits: Tensor, factor_logits: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The IACS alone ranks and scores (no centerness)."""
        return cls_logits.sigmoid(), None

    # -- targets ----------------------------------------------------------------------------
    def assignment_inputs(self, priors: DensePriors, outs: DenseOutputs, image: int, meta: ImageMeta) -> Instances:
        """Points and level ids; with ATSS also ``anchors`` (the squares ATSS assigns) and ``valid`` (anchors
        on the image's padded area within ``train_cfg.allowed_border``)."""
        pred = super().assignment_inputs(priors, outs, image, meta)
        if self.use_atss:
            sizes, device = outs.featmap_sizes, pred.priors.device
            anchors = torch.cat(self.atss_prior_generator.grid_priors(sizes, dtype=pred.priors.dtype, device=device))
            flags = torch.cat(self.atss_prior_generator.valid_flags(sizes, tuple(meta.pad_shape), device=device))
            pred.anchors = anchors
            pred.valid = anchor_inside_flags(anchors, flags, tuple(meta.img_shape),
                                             self.train_cfg.get("allowed_border", -1))
        return pred

    def get_targets_single(
        self, pred: Instances, gt: Instances, ignored: Instances | None, meta: ImageMeta
    ) -> DenseTargets:
        """With ATSS: the valid anchors assigned by ``train_cfg.assigner``; positives regress the (l, t, r, b)
        distances from their point to their ground truth; invalid and ignored anchors get label weight 0.
        Without ATSS: FCOS's targets (in pixels)."""
        if not self.use_atss:
            return super().get_targets_single(pred, gt, ignored, meta)
        if self.assigner is None:
            raise ConfigError("VFNetHead: training with ATSS needs train_cfg.assigner (e.g. {type = \"ATSSAssigner\", topk = 9})")
        points = pred.priors
        num_points = points.shape[0]
        inside = pred.valid.nonzero().flatten()
        candidates = Instances(tuple(meta.img_shape), priors=pred.anchors[inside], level_ids=pred.level_ids[inside])
        assigned = torch.full((num_points,), -1, dtype=torch.long, device=points.device)
        assigned[inside] = self.assigner.assign(candidates, gt, ignored).gt_inds.long()

        pos = (assigned > 0).nonzero().flatten()
        neg = (assigned == 0).nonzero().flatten()
        labels = points.new_full((num_points,), self.num_classes, dtype=torch.long)
        label_weights = points.new_zeros(num_points)
        bbox_targets = points.new_zeros((num_points, 4))
        bbox_weights = points.new_zeros((num_points, 4))
        if pos.numel() > 0:
            matched = assigned[pos] - 1
            labels[pos] = gt.labels[matched]
            bbox_targets[pos] = self.bbox_coder.encode(points[pos], gt.boxes[matched].to(points.dtype))
            bbox_weights[pos] = 1.0
            pos_weight = self.train_cfg.get("pos_weight", -1)
            label_weights[pos] = 1.0 if pos_weight <= 0 else float(pos_weight)
        label_weights[neg] = 1.0
        return DenseTargets(labels, label_weights, bbox_targets, bbox_weights, assigned, pos, neg,
                            avg_factor=float(pos.numel()))

    # -- losses -----------------------------------------------------------------------------
    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """GIoU of the initial and of the refined boxes, each weighted by its IoU with the target (averaged
        over the IoUs' sum, at least 1), and the varifocal loss of the IACS against the refined IoU at each
        positive's class (averaged over the positives; over all ranks with ``sync_num_pos``)."""
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        refined = flatten_levels(outs.bbox_preds, 4).reshape(-1, 4)
        initial = flatten_levels(outs.extras["bbox_preds_init"], 4).reshape(-1, 4)
        pos = targets.pos_inds
        num_pos = float(pos.numel())
        if self.sync_num_pos:
            num_pos = float(all_reduce_mean(cls.new_tensor(num_pos)))
        num_pos = max(num_pos, 1.0)

        points = priors.flat.repeat(len(batch.metas), 1)[pos]
        target_boxes = self.bbox_coder.decode(points, targets.bbox_targets[pos]).detach()
        initial_boxes = self.bbox_coder.decode(points, initial[pos])
        refined_boxes = self.bbox_coder.decode(points, refined[pos])
        iou_initial = bbox_overlaps(initial_boxes, target_boxes, is_aligned=True).clamp(min=1e-6).detach()
        iou_refined = bbox_overlaps(refined_boxes, target_boxes, is_aligned=True).clamp(min=1e-6).detach()
        if pos.numel() > 0:
            loss_bbox = self.loss_bbox(initial_boxes, target_boxes, weight=iou_initial,
                                       avg_factor=self._iou_avg_factor(iou_initial))
            loss_bbox_rf = self.loss_bbox_refine(refined_boxes, target_boxes, weight=iou_refined,
                                                 avg_factor=self._iou_avg_factor(iou_refined))
        else:
            # zero losses that keep both box branches in the graph
            loss_bbox, loss_bbox_rf = initial.sum() * 0, refined.sum() * 0
        if self.use_vfl:
            cls_targets = torch.zeros_like(cls)
            cls_targets[pos, targets.labels[pos]] = iou_refined.to(cls.dtype)
            loss_cls = self.loss_cls(cls, cls_targets, targets.label_weights, avg_factor=num_pos)
        else:
            loss_cls = self.loss_cls(cls, targets.labels, targets.label_weights, avg_factor=num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_bbox_rf": loss_bbox_rf}

    @staticmethod
    def _iou_avg_factor(ious: Tensor) -> float:
        """The IoU weights' sum (averaged over ranks), at least 1."""
        return max(float(all_reduce_mean(ious.sum())), 1.0)
