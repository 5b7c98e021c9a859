"""Mask R-CNN's mask head: convs on RoI features, 2x upsampling, per-class mask logits; targets and pasting."""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detcore import ops
from detcore.interfaces import MaskHead, SamplingResult
from detcore.registry import build
from detcore.structures import Instances

from det_common.layers import ConvModule

UPSAMPLE_METHODS = ("deconv", "nearest", "bilinear")


class FCNMaskHead(MaskHead):
    """``num_convs`` 3x3 ``convs``, an ``upsample`` (deconv by default) + ReLU, and a 1x1 ``conv_logits``
    giving (K, num_classes or 1, 2S, 2S) mask logits for S x S RoI features (MMDetection's FCNMaskHead).
    ``paste``: how a mask is resampled into its box, "mmdet" (pixel centres) or "torchvision" (its Mask R-CNN's)."""

    def __init__(
        self,
        num_convs: int = 4,
        roi_feat_size: int = 14,
        in_channels: int = 256,
        conv_kernel_size: int = 3,
        conv_out_channels: int = 256,
        num_classes: int = 80,
        class_agnostic: bool = False,
        upsample_method: str = "deconv",
        scale_factor: int = 2,
        conv_cfg: dict[str, Any] | None = None,
        norm_cfg: dict[str, Any] | None = None,
        loss_mask: dict[str, Any] | None = None,
        paste: str = "mmdet",
    ) -> None:
        super().__init__()
        if paste not in PASTE_FUNCTIONS:
            raise ValueError(f"FCNMaskHead: paste must be one of {sorted(PASTE_FUNCTIONS)}, got {paste!r}")
        self.paste = paste
        if upsample_method not in UPSAMPLE_METHODS:
            raise ValueError(f"FCNMaskHead: upsample_method must be one of {UPSAMPLE_METHODS}, got {upsample_method!r}")
        self.roi_feat_size = roi_feat_size
        self.num_classes = num_classes
        self.class_agnostic = class_agnostic
        self.upsample_method = upsample_method
        self.scale_factor = scale_factor
        self.convs = nn.ModuleList(
            ConvModule(
                in_channels if i == 0 else conv_out_channels,
                conv_out_channels,
                conv_kernel_size,
                padding=(conv_kernel_size - 1) // 2,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg,
            )
            for i in range(num_convs)
        )
        channels = conv_out_channels if num_convs > 0 else in_channels
        self.upsample = None
        if upsample_method == "deconv":
            self.upsample = nn.ConvTranspose2d(channels, channels, scale_factor, stride=scale_factor)
        self.conv_logits = nn.Conv2d(channels, 1 if class_agnostic else num_classes, 1)
        self.loss_mask = build("losses", dict(loss_mask or {"type": "CrossEntropyLoss", "use_mask": True, "loss_weight": 1.0}))
        for module in (self.upsample, self.conv_logits):
            if module is not None:
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(module.bias, 0.0)

    def forward(self, roi_feats: Tensor) -> Tensor:
        return self.logits(self.conv_feats(roi_feats))

    def conv_feats(self, roi_feats: Tensor) -> Tensor:
        """The ``convs`` tower's output (K, C, S, S), before upsampling (HTC passes it to the next stage)."""
        x = roi_feats
        for conv in self.convs:
            x = conv(x)
        return x

    def logits(self, x: Tensor) -> Tensor:
        """Mask logits (K, num_classes or 1, 2S, 2S) of the tower's features: upsample, then ``conv_logits``."""
        if self.upsample is not None:
            x = F.relu(self.upsample(x))
        else:
            x = F.interpolate(x, scale_factor=self.scale_factor, mode=self.upsample_method)
        return self.conv_logits(x)

    def get_targets(
        self, sampling_results: Sequence[SamplingResult], gts: Sequence[Instances], mask_size: int
    ) -> Tensor:
        """Binary (K, M, M) targets: each positive RoI's ground-truth mask cropped to it and resized (RoIAlign)."""
        targets = []
        for res, gt in zip(sampling_results, gts):
            rois = res.pos_priors
            if rois.shape[0] == 0:
                continue
            masks = gt.masks[res.pos_assigned_gt_inds].to(rois.dtype)[:, None]
            index = torch.arange(rois.shape[0], dtype=rois.dtype, device=rois.device)[:, None]
            cropped = ops.roi_align(masks, torch.cat([index, rois], dim=1), mask_size, 1.0, 0, True)
            targets.append((cropped[:, 0] >= 0.5).to(rois.dtype))
        if not targets:
            return sampling_results[0].pos_priors.new_zeros((0, mask_size, mask_size))
        return torch.cat(targets)

    def loss(self, mask_pred: Tensor, mask_targets: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Mean per-pixel BCE of each positive RoI's class channel (channel 0 when class agnostic)."""
        if self.class_agnostic:
            labels = torch.zeros_like(labels)
        return {"loss_mask": self.loss_mask(mask_pred, mask_targets, label=labels)}

    def predict_by_feat(
        self, mask_pred: Tensor | None, boxes: Tensor, labels: Tensor, out_shape: tuple[int, int], threshold: float = 0.5
    ) -> Tensor:
        """(N, H, W) bool masks: each detection's class probabilities pasted into its box of an H x W image."""
        if mask_pred is None or boxes.shape[0] == 0:
            return self.paste_probs(None, boxes, out_shape, threshold)
        return self.paste_probs(self.class_probs(mask_pred, labels), boxes, out_shape, threshold)

    def class_probs(self, mask_pred: Tensor, labels: Tensor) -> Tensor:
        """(N, M, M) foreground probabilities of each detection's class channel (channel 0 when class agnostic)."""
        channel = torch.zeros_like(labels) if self.class_agnostic else labels
        return mask_pred[torch.arange(mask_pred.shape[0], device=mask_pred.device), channel].float().sigmoid()

    def paste_probs(
        self, probs: Tensor | None, boxes: Tensor, out_shape: tuple[int, int], threshold: float = 0.5
    ) -> Tensor:
        """(N, H, W) bool masks from per-detection (M, M) probabilities pasted into their boxes and thresholded."""
        height, width = int(out_shape[0]), int(out_shape[1])
        masks = torch.zeros((boxes.shape[0], height, width), dtype=torch.bool, device=boxes.device)
        if probs is None:
            return masks
        for i in range(boxes.shape[0]):
            pasted = PASTE_FUNCTIONS[self.paste](probs[i], boxes[i], height, width)
            if pasted is not None:
                (x0, y0), region = pasted
                masks[i, y0 : y0 + region.shape[0], x0 : x0 + region.shape[1]] = region >= threshold
        return masks


def paste_mask(prob: Tensor, box: Tensor, height: int, width: int) -> tuple[tuple[int, int], Tensor] | None:
    """Resample an (M, M) mask onto the pixels its box covers in an H x W image (bilinear, pixel centers).

    Returns the region's top-left (x, y) and its values, or None when the box misses the image.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    x0, y0 = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
    xe, ye = min(int(math.ceil(x2)) + 1, width), min(int(math.ceil(y2)) + 1, height)
    if xe <= x0 or ye <= y0:
        return None
    xs = (torch.arange(x0, xe, dtype=prob.dtype, device=prob.device) + 0.5 - x1) / max(x2 - x1, 1e-6) * 2 - 1
    ys = (torch.arange(y0, ye, dtype=prob.dtype, device=prob.device) + 0.5 - y1) / max(y2 - y1, 1e-6) * 2 - 1
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    region = F.grid_sample(prob[None, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (x0, y0), region[0, 0]


def paste_mask_torchvision(
    prob: Tensor, box: Tensor, height: int, width: int
) -> tuple[tuple[int, int], Tensor] | None:
    """``paste_mask`` as torchvision's Mask R-CNN does it: the (M, M) mask gets a one-pixel zero border, its box is
    widened about its centre by (M + 2) / M and truncated to whole pixels, and the bordered mask is resized
    bilinearly to the box's (h + 1, w + 1) pixels."""
    size = prob.shape[-1]
    scale = (size + 2) / size
    cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
    half_w, half_h = float(box[2] - box[0]) / 2 * scale, float(box[3] - box[1]) / 2 * scale
    x1, y1, x2, y2 = (int(v) for v in (cx - half_w, cy - half_h, cx + half_w, cy + half_h))
    box_w, box_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    bordered = F.pad(prob[None, None], (1, 1, 1, 1))
    resized = F.interpolate(bordered, size=(box_h, box_w), mode="bilinear", align_corners=False)[0, 0]
    x0, y0 = max(x1, 0), max(y1, 0)
    xe, ye = min(x2 + 1, width), min(y2 + 1, height)
    if xe <= x0 or ye <= y0:
        return None
    return (x0, y0), resized[y0 - y1 : ye - y1, x0 - x1 : xe - x1]


PASTE_FUNCTIONS = {"mmdet": paste_mask, "torchvision": paste_mask_torchvision}
