"""AutoAssignHead (Zhu et al. 2020, "AutoAssign: Differentiable Label Assignment for Dense Object Detection"):
no fixed positives; every location inside a box is weighed as a positive by its joint confidence and a learned
center prior, and as a negative by how badly its box fits."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from det_anchor_free.heads.fcos_head import INF, FCOSHead
from det_common.bbox import bbox_overlaps
from det_common.heads import DenseOutputs, flatten_levels
from det_common.layers import bias_init_with_prob, normal_init
from det_common.layers.center_prior import CenterPrior
from detcore.structures import Batch, Instances

EPS = 1e-12
_NORM = {"type": "GN", "num_groups": 32, "requires_grad": True}
_LOSS_BBOX = {"type": "GIoULoss", "loss_weight": 5.0}
#: how strongly confident locations dominate an object's positive loss (the paper's "3")
CONFIDENCE_TEMPERATURE = 3.0


class AutoAssignHead(FCOSHead):
    """FCOS's layers (GN towers with biased convs, ``conv_cls``, ``conv_reg``, ``conv_centerness`` from the
    regression tower as the objectness, ``scales``) on points at ``k * stride``, distances through ReLU times the
    stride, and a ``center_prior`` (``CenterPrior``).

    Losses, per image over the points inside each box: the positive loss is the BCE against 1 of a weighted
    mean of the joint confidence p = cls * objectness * exp(-box loss), weighted by exp(3 p) times the center
    prior; the negative loss is a focal-style BCE against 0 of cls * objectness scaled down inside boxes by
    1 - (normalised 1 / (1 - IoU)); the center loss pushes the prior mass up (objects / prior sum). They are
    averaged over the objects, the prior mass and the images, and weighted ``pos_loss_weight``,
    ``neg_loss_weight``, ``center_loss_weight``. Inference is FCOS's (class score times objectness).
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (8, 16, 32, 64, 128),
        force_topk: bool = False,
        topk: int = 9,
        pos_loss_weight: float = 0.25,
        neg_loss_weight: float = 0.75,
        center_loss_weight: float = 0.75,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = _NORM,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.pos_loss_weight = pos_loss_weight
        self.neg_loss_weight = neg_loss_weight
        self.center_loss_weight = center_loss_weight
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, stacked_convs=stacked_convs, strides=strides,
            regress_ranges=[(-1, INF)] * len(strides),  # FCOS's size ranges are not used: every level competes
            conv_bias=True, conv_cfg=conv_cfg, norm_cfg=norm_cfg, point_offset=0.0, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self.center_prior = CenterPrior(num_classes, force_topk=force_topk, topk=topk)

    def init_weights(self) -> None:
        """FCOS's init, then a 0.02 foreground prior for ``conv_cls`` and distances starting at 4 strides."""
        super().init_weights()
        normal_init(self.conv_cls, std=0.01, bias=bias_init_with_prob(0.02))
        normal_init(self.conv_reg, std=0.01, bias=4.0)

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor, Tensor]:
        """Class logits (N, C, H, W), distances in pixels (N, 4, H, W) and objectness logits (N, 1, H, W)."""
        cls_score, bbox_pred, _, reg_feat = self.tower_outputs(x)
        objectness = self.conv_centerness(reg_feat)
        bbox_pred = self.scales[level](bbox_pred).float().clamp(min=0) * self.strides[level]
        return cls_score, bbox_pred, objectness

    # -- losses -----------------------------------------------------------------------------
    def loss_by_feat(self, outs: DenseOutputs, batch: Batch) -> dict[str, Tensor]:
        """``loss_pos``, ``loss_neg`` and ``loss_center`` (see the class) from the raw outputs."""
        if batch.gt is None:
            raise ValueError("AutoAssignHead.loss needs ground truth (batch.gt is None)")
        if outs.score_factors is None:
            raise ValueError("AutoAssignHead: forward must give the objectness maps as score_factors")
        priors = self.get_priors(outs)
        points = priors.flat
        strides = torch.as_tensor(self.strides, dtype=points.dtype, device=points.device)[priors.level_ids]
        cls_probs = flatten_levels(outs.cls_scores, self.cls_out_channels).sigmoid()
        objectness = flatten_levels(outs.score_factors, 1).sigmoid()
        deltas = flatten_levels(outs.bbox_preds, 4)
        pos_losses, neg_losses, prior_sums, center_losses = [], [], [], []
        for i, gt in enumerate(batch.gt):
            joint = cls_probs[i] * objectness[i]
            inside = self.points_inside(points, gt.boxes)
            prior, inside = self.center_prior(points, strides, gt.boxes, gt.labels, inside)
            box_loss, ious = self.box_losses(points, deltas[i], gt.boxes, inside)
            pos_losses.append(self.positive_loss(joint, box_loss, gt, prior))
            neg_losses.append(self.negative_loss(joint, ious, gt, inside))
            prior_sums.append(prior.detach().sum())
            if inside.any():
                center_losses.append(len(gt) / prior.sum().clamp(min=EPS))
            else:  # boxes smaller than the finest stride hold no point
                center_losses.append(prior.sum() * 0)
        num_gts = sum(len(gt) for gt in batch.gt)
        loss_pos = torch.stack(pos_losses).sum() / max(num_gts, 1)
        loss_neg = torch.stack(neg_losses).sum() / torch.stack(prior_sums).sum().clamp(min=1)
        loss_center = torch.stack(center_losses).mean() * self.center_loss_weight
        if num_gts == 0:  # keep every parameter in the graph (distributed training)
            loss_pos = deltas.sum() * 0
            loss_center = objectness.sum() * 0 + self.center_prior.mean.sum() * 0 + self.center_prior.sigma.sum() * 0
        return {"loss_pos": loss_pos, "loss_neg": loss_neg, "loss_center": loss_center}

    @staticmethod
    def points_inside(points: Tensor, boxes: Tensor) -> Tensor:
        """(P, G): whether each point lies strictly inside each box."""
        x, y = points[:, 0, None], points[:, 1, None]
        return (x > boxes[None, :, 0]) & (y > boxes[None, :, 1]) & (x < boxes[None, :, 2]) & (y < boxes[None, :, 3])

    def box_losses(self, points: Tensor, deltas: Tensor, boxes: Tensor, inside: Tensor) -> tuple[Tensor, Tensor]:
        """(loss_bbox of every point's box against every object (P, G), and without gradient the best IoU of
        the point's box with any object, zero outside the object (P, G))."""
        num_points, num_gts = points.shape[0], boxes.shape[0]
        expanded = points[:, None].expand(num_points, num_gts, 2).reshape(-1, 2)
        targets = boxes[None].expand(num_points, num_gts, 4).reshape(-1, 4)
        # the targets go through the coder as distances, as the predictions do
        pred_boxes = self.bbox_coder.decode(expanded, deltas[:, None].expand(num_points, num_gts, 4).reshape(-1, 4))
        target_boxes = self.bbox_coder.decode(expanded, self.bbox_coder.encode(expanded, targets))
        with torch.no_grad():
            ious = bbox_overlaps(pred_boxes, target_boxes, is_aligned=True).view(num_points, num_gts)
            if num_gts > 0:
                ious = ious.max(dim=1, keepdim=True).values.expand(num_points, num_gts)
            ious = ious.masked_fill(~inside, 0.0)
        loss = self.loss_bbox(pred_boxes, target_boxes, reduction_override="none").view(num_points, num_gts)
        return loss, ious

    def positive_loss(self, joint: Tensor, box_loss: Tensor, gt: Instances, prior: Tensor) -> Tensor:
        """Sum over objects of BCE(weighted mean of p, 1), p = joint confidence of the object's class times
        exp(-box loss), the weights exp(3 p) times the center prior (normalised over the points)."""
        p_pos = joint[:, gt.labels] * torch.exp(-box_loss)
        weight = torch.exp(p_pos * CONFIDENCE_TEMPERATURE) * prior
        weight = weight / weight.sum(dim=0, keepdim=True).clamp(min=EPS)
        mean_p = (p_pos * weight).sum(dim=0)
        return F.binary_cross_entropy(mean_p, torch.ones_like(mean_p), reduction="sum") * self.pos_loss_weight

    def negative_loss(self, joint: Tensor, ious: Tensor, gt: Instances, inside: Tensor) -> Tensor:
        """Sum of p^2 * BCE(p, 0) over points and classes, p = joint confidence times 1 - w inside the boxes (at
        their class), w = 1 / (1 - IoU) rescaled to [0, 1] over each object's points; where several objects of a
        class cover a point, the last one's weight counts."""
        neg_weight = torch.ones_like(joint)
        if len(gt) > 0:
            gt_idx, point_idx = inside.T.nonzero(as_tuple=True)
            w = 1 / (1 - ious[point_idx, gt_idx]).clamp(min=EPS)
            lo = w.new_full((len(gt),), float("inf")).scatter_reduce(0, gt_idx, w, "amin")[gt_idx]
            hi = w.new_full((len(gt),), float("-inf")).scatter_reduce(0, gt_idx, w, "amax")[gt_idx]
            w = (w - lo + EPS) / (hi - lo + EPS)
            cell = point_idx * joint.shape[1] + gt.labels[gt_idx]
            order = torch.arange(cell.numel(), device=cell.device)
            last = torch.full_like(neg_weight, -1, dtype=torch.long).flatten().scatter_reduce(0, cell, order, "amax")
            chosen = last[last >= 0]
            neg_weight.view(-1)[cell[chosen]] = 1 - w[chosen]
        p_neg = joint * neg_weight
        bce = F.binary_cross_entropy(p_neg, torch.zeros_like(p_neg), reduction="none")
        return (p_neg**2 * bce).sum() * self.neg_loss_weight
