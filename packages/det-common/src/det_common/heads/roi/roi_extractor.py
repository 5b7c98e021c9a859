"""Multi-level RoI feature extraction: map each RoI to one FPN level, then pool it there.

Two level mappings: MMDetection's (``floor(log2(sqrt(wh) / finest_scale + 1e-6))``) and torchvision's
``MultiScaleRoIAlign`` (FPN paper eq. 1: ``floor(k0 + log2(sqrt(wh) / 224) + 1e-6)``, clamped to the levels).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from detcore.interfaces import RoIExtractor

from det_common.bbox import bbox_rescale
from det_common.heads.roi.roi_layers import build_roi_layer

LEVEL_MAPPINGS = ("mmdet", "torchvision")


class SingleRoIExtractor(RoIExtractor):
    """Pools every RoI from the single feature level its size maps to (MMDetection's SingleRoIExtractor).

    ``level_mapping="torchvision"`` reproduces torchvision's MultiScaleRoIAlign level choice (pair it
    with ``roi_layer = {type = "RoIAlign", output_size = 7, sampling_ratio = 2, aligned = false}``).
    """

    def __init__(
        self,
        roi_layer: dict[str, Any] | None = None,
        out_channels: int = 256,
        featmap_strides: Sequence[int] = (4, 8, 16, 32),
        finest_scale: int = 56,
        level_mapping: str = "mmdet",
        canonical_scale: int = 224,
        canonical_level: int = 4,
        roi_scale_factor: float | None = None,
    ) -> None:
        super().__init__()
        if level_mapping not in LEVEL_MAPPINGS:
            raise ValueError(f"SingleRoIExtractor: level_mapping must be one of {LEVEL_MAPPINGS}, got {level_mapping!r}")
        if not featmap_strides:
            raise ValueError("SingleRoIExtractor: featmap_strides must name at least one level")
        if roi_layer is None:
            roi_layer = {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0, "aligned": True}
        self.out_channels = out_channels
        self.featmap_strides = [int(s) for s in featmap_strides]
        self.finest_scale = finest_scale
        self.level_mapping = level_mapping
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level
        self.roi_scale_factor = roi_scale_factor
        self.roi_layers = nn.ModuleList(build_roi_layer(roi_layer, 1.0 / s) for s in self.featmap_strides)
        self.output_size = self.roi_layers[0].output_size

    @property
    def num_inputs(self) -> int:
        """How many (finest-first) feature levels the extractor pools from."""
        return len(self.featmap_strides)

    def map_roi_levels(self, rois: Tensor) -> Tensor:
        """Level index (int64, 0 = finest) of every RoI (K, 5)."""
        scale = torch.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
        if self.level_mapping == "mmdet":
            levels = torch.floor(torch.log2(scale / self.finest_scale + 1e-6))
            return levels.clamp(min=0, max=self.num_inputs - 1).long()
        k_min = round(math.log2(self.featmap_strides[0]))
        k_max = round(math.log2(self.featmap_strides[-1]))
        levels = torch.floor(self.canonical_level + torch.log2(scale / self.canonical_scale) + 1e-6)
        return (levels.clamp(min=k_min, max=k_max) - k_min).long()

    def forward(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Pooled features (K, C, oh, ow) of RoIs (K, 5) in network-input pixels."""
        feats = feats[: self.num_inputs]
        out_h, out_w = self.output_size
        roi_feats = feats[0].new_zeros((rois.shape[0], feats[0].shape[1], out_h, out_w))
        if rois.shape[0] == 0:
            return roi_feats
        if self.roi_scale_factor is not None:
            rois = bbox_rescale(rois, self.roi_scale_factor)
        if len(feats) == 1:
            return self.roi_layers[0](feats[0], rois)
        levels = self.map_roi_levels(rois)
        pooled, order = [], []
        tracing = torch.jit.is_tracing()
        for i, (feat, layer) in enumerate(zip(feats, self.roi_layers)):
            inds = torch.nonzero(levels == i).flatten()
            if inds.numel() > 0 or tracing:  # a traced (ONNX) graph must pool every level, empty at trace time or not
                pooled.append(layer(feat, rois[inds]).to(roi_feats.dtype))
                order.append(inds)
        # level by level, then back to the RoIs' order: no in-place writes, so the traced graph stays valid
        return torch.cat(pooled)[torch.argsort(torch.cat(order))]
