"""Sparse R-CNN's box head (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with Learnable Proposals"):
the dynamic instance interactive head of one stage."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from det_common.heads.roi.bbox_head import BBoxHead, accuracy
from det_common.layers import bias_init_with_prob
from det_transformer.layers.attention import FFN, MultiheadAttention
from det_transformer.layers.dynamic_conv import build_dynamic_conv
from detcore.interfaces import SamplingResult
from detcore.registry import build

DEFAULT_DYNAMIC_CONV = {"type": "DynamicConv", "in_channels": 256, "feat_channels": 64, "out_channels": 256,
                        "input_feat_shape": 7, "act_cfg": {"type": "ReLU", "inplace": True}, "norm_cfg": {"type": "LN"}}


def fc_norm_relu(channels: int, count: int) -> nn.ModuleList:
    """``count`` x (bias-free Linear, LayerNorm, ReLU), flat as MMDetection names them (``0, 1, 2, 3, ...``)."""
    layers = nn.ModuleList()
    for _ in range(count):
        layers.extend([nn.Linear(channels, channels, bias=False), nn.LayerNorm(channels), nn.ReLU(inplace=True)])
    return layers


class DIIHead(BBoxHead):
    """One Sparse R-CNN stage on its proposals' features (B, N, C) and RoI features (B*N, C, S, S): self-attention
    among an image's proposals, dynamic convolution of each proposal's RoI features with weights from its feature,
    an FFN, then a classifier (sigmoid with focal loss, or softmax with background last) and class-agnostic box
    deltas (decoded by the RoI head; losses are on the decoded boxes: L1 on image-normalised corners and GIoU).
    """

    def __init__(self, num_classes: int = 80, num_ffn_fcs: int = 2, num_heads: int = 8, num_cls_fcs: int = 1,
                 num_reg_fcs: int = 3, feedforward_channels: int = 2048, in_channels: int = 256, dropout: float = 0.0,
                 ffn_act_cfg: Mapping[str, Any] | None = None, dynamic_conv_cfg: Mapping[str, Any] | None = None,
                 loss_iou: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        for fixed in ("reg_class_agnostic", "reg_decoded_bbox"):
            if not kwargs.pop(fixed, True):
                raise ValueError(f"DIIHead: {fixed} must be true (class-agnostic regression of decoded boxes)")
        super().__init__(num_classes=num_classes, in_channels=in_channels, reg_class_agnostic=True,
                         reg_decoded_bbox=True, **kwargs)
        self.loss_iou = build("losses", dict(loss_iou or {"type": "GIoULoss", "loss_weight": 2.0}))
        self.attention = MultiheadAttention(in_channels, num_heads, dropout)
        self.attention_norm = nn.LayerNorm(in_channels)
        self.instance_interactive_conv = build_dynamic_conv(dynamic_conv_cfg or DEFAULT_DYNAMIC_CONV)
        self.instance_interactive_conv_dropout = nn.Dropout(dropout)
        self.instance_interactive_conv_norm = nn.LayerNorm(in_channels)
        self.ffn = FFN(in_channels, feedforward_channels, num_ffn_fcs, act_cfg=ffn_act_cfg, ffn_drop=dropout)
        self.ffn_norm = nn.LayerNorm(in_channels)
        self.cls_fcs = fc_norm_relu(in_channels, num_cls_fcs)
        self.reg_fcs = fc_norm_relu(in_channels, num_reg_fcs)
        self.init_weights()  # the base class built fc_cls / fc_reg (build_predictors) before these layers existed

    @property
    def use_sigmoid(self) -> bool:
        return bool(getattr(self.loss_cls, "use_sigmoid", False))

    def build_predictors(self, cls_in_features: int, reg_in_features: int) -> None:
        """``fc_cls`` (num_classes outputs with a sigmoid loss, + background otherwise) and ``fc_reg`` (4 deltas)
        on the ``in_channels`` object feature."""
        self.fc_cls = nn.Linear(self.in_channels, self.num_classes + (0 if self.use_sigmoid else 1))
        self.fc_reg = nn.Linear(self.in_channels, 4)

    def init_weights(self) -> None:
        """Xavier-uniform matrices (norms keep their defaults); the focal classifier's bias starts at p = 0.01."""
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        if self.use_sigmoid:
            nn.init.constant_(self.fc_cls.bias, bias_init_with_prob(0.01))

    def forward(self, roi_feats: Tensor, proposal_feats: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # type: ignore[override]
        """Class logits (B, N, K), box deltas (B, N, 4), the new proposal features (B, N, C) and the features
        after self-attention (B, N, C; QueryInst's mask branch reads them)."""
        batch_size, num_proposals = proposal_feats.shape[:2]
        attn_feats = self.attention_norm(self.attention(proposal_feats))
        flat = attn_feats.reshape(-1, self.in_channels)
        flat = flat + self.instance_interactive_conv_dropout(self.instance_interactive_conv(flat, roi_feats))
        obj_feats = self.ffn_norm(self.ffn(self.instance_interactive_conv_norm(flat)))
        cls_feat, reg_feat = obj_feats, obj_feats
        for layer in self.cls_fcs:
            cls_feat = layer(cls_feat)
        for layer in self.reg_fcs:
            reg_feat = layer(reg_feat)
        cls_score = self.fc_cls(cls_feat).view(batch_size, num_proposals, -1)
        bbox_delta = self.fc_reg(reg_feat).view(batch_size, num_proposals, 4)
        return cls_score, bbox_delta, obj_feats.view(batch_size, num_proposals, self.in_channels), attn_feats

    def get_targets(self, sampling_results: Sequence[SamplingResult],
                    pos_weight: float = -1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Labels (background = num_classes), label weights, box targets (gt corners) and box weights of every
        proposal, in the proposals' own order (the sampler keeps them all)."""
        labels, label_weights, bbox_targets, bbox_weights = [], [], [], []
        for res in sampling_results:
            num = res.pos_inds.numel() + res.neg_inds.numel()
            ref = res.pos_priors
            img_labels = torch.full((num,), self.num_classes, dtype=torch.long, device=ref.device)
            img_label_weights, img_targets, img_weights = ref.new_zeros(num), ref.new_zeros(num, 4), ref.new_zeros(num, 4)
            img_labels[res.pos_inds] = res.pos_gt_labels.long()
            img_label_weights[res.pos_inds] = 1.0 if pos_weight <= 0 else pos_weight
            img_label_weights[res.neg_inds] = 1.0
            img_targets[res.pos_inds] = res.pos_gt_boxes
            img_weights[res.pos_inds] = 1.0
            labels.append(img_labels)
            label_weights.append(img_label_weights)
            bbox_targets.append(img_targets)
            bbox_weights.append(img_weights)
        return torch.cat(labels), torch.cat(label_weights), torch.cat(bbox_targets), torch.cat(bbox_weights)

    def loss(self, cls_score: Tensor, boxes: Tensor, imgs_whwh: Tensor, labels: Tensor,  # type: ignore[override]
             label_weights: Tensor, bbox_targets: Tensor, bbox_weights: Tensor) -> dict[str, Tensor]:
        """Classification over all proposals (K, classes), L1 of image-normalised corners and GIoU over the matched
        ones; each averaged over the number of matched proposals (at least 1, so an image without objects trains).
        ``boxes`` are the decoded boxes (K, 4), ``imgs_whwh`` (K, 4) each proposal's image width, height, width,
        height."""
        pos = (labels >= 0) & (labels < self.num_classes)
        avg_factor = max(float(pos.sum()), 1.0)
        losses = {"loss_cls": self.loss_cls(cls_score, labels, label_weights, avg_factor=avg_factor),
                  "pos_acc": accuracy(cls_score[pos].detach(), labels[pos])}
        if bool(pos.any()):
            pos_boxes, pos_targets, pos_whwh = boxes[pos], bbox_targets[pos], imgs_whwh[pos]
            losses["loss_bbox"] = self.loss_bbox(pos_boxes / pos_whwh, pos_targets / pos_whwh, bbox_weights[pos],
                                                 avg_factor=avg_factor)
            losses["loss_iou"] = self.loss_iou(pos_boxes, pos_targets, bbox_weights[pos], avg_factor=avg_factor)
        else:
            losses["loss_bbox"] = losses["loss_iou"] = boxes.sum() * 0.0
        return losses
