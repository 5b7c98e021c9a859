"""What every detcore detector shares: backbone and neck built once, feature extraction, inference
optimisation (conv-BN folding, channels-last layout)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from det_common.layers import fuse_conv_bn
from detcore.interfaces import Detector
from detcore.registry import build


class BaseDetector(Detector):
    """Backbone (+ optional neck) feature extraction and ``optimize_for_inference``.

    Builds ``self.backbone`` and ``self.neck`` (None without a neck) and keeps ``train_cfg`` /
    ``test_cfg``; subclasses build their heads on top.
    """

    memory_format: torch.memory_format = torch.contiguous_format

    def __init__(
        self,
        backbone: Mapping[str, Any],
        neck: Mapping[str, Any] | None = None,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = build("backbones", backbone)
        self.neck = build("necks", neck) if neck is not None else None
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})

    def extract_feat(self, images: Tensor) -> tuple[Tensor, ...]:
        """Backbone features, refined by the neck when there is one."""
        feats = self.backbone(self._layout(images))
        if self.neck is not None:
            feats = self.neck(feats)
        return tuple(feats)

    def optimize_for_inference(self, channels_last: bool = True) -> "BaseDetector":
        """Prepare for fast CPU/GPU inference; outputs are unchanged up to float rounding."""
        self.eval()
        fuse_conv_bn(self)
        if channels_last:
            self.memory_format = torch.channels_last
            self.to(memory_format=torch.channels_last)
        return self

    def _layout(self, images: Tensor) -> Tensor:
        """Images in the memory layout the model's weights use."""
        if self.memory_format is torch.contiguous_format:
            return images
        return images.contiguous(memory_format=self.memory_format)
