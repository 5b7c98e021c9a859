"""Pixel-value transforms: normalisation and SSD's photometric distortion (`003` §4.1.2)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from detcore.interfaces.data import Transform


class Normalize(Transform):
    """``(img - mean) / std`` per channel; output float32. Adds ``img_norm_cfg``.

    Images are always loaded as RGB and ``mean``/``std`` are in RGB order. ``to_rgb=False`` (a
    Caffe-style backbone trained on BGR, MMDetection's "keep cv2's BGR") reverses the channels to
    BGR and expects ``mean``/``std`` in BGR order.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], to_rgb: bool = True) -> None:
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"Normalize: mean and std need 3 values, got {list(mean)} and {list(std)}")
        if min(std) <= 0:
            raise ValueError(f"Normalize: std must be positive, got {list(std)}")
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.to_rgb = to_rgb

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = results["img"].as_subclass(torch.Tensor).to(torch.float32)
        if not self.to_rgb:
            img = img.flip(0)
        out = dict(results)
        out["img"] = tv_tensors.Image(F.normalize(img, self.mean, self.std))
        out["img_norm_cfg"] = {"mean": self.mean, "std": self.std, "to_rgb": self.to_rgb}
        return out

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std}, to_rgb={self.to_rgb})"


class PhotoMetricDistortion(Transform):
    """SSD's colour jitter, each step with probability 1/2, in random order of contrast:

    brightness (add a delta in [-``brightness_delta``, +]), contrast (before or after the
    HSV steps; factor in ``contrast_range``), saturation (``saturation_range``), hue (shift by
    up to ``hue_delta`` degrees), random channel permutation. Output is float32 in 0..255.
    """

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: Sequence[float] = (0.5, 1.5),
        saturation_range: Sequence[float] = (0.5, 1.5),
        hue_delta: float = 18,
        channel_swap: bool = True,
    ) -> None:
        self.brightness_delta = brightness_delta
        self.contrast_range = tuple(contrast_range)
        self.saturation_range = tuple(saturation_range)
        self.hue_delta = hue_delta
        self.channel_swap = channel_swap

    def _contrast(self, img: torch.Tensor) -> torch.Tensor:
        if np.random.randint(2):
            return F.adjust_contrast(img, float(np.random.uniform(*self.contrast_range)))
        return img

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        img = results["img"].as_subclass(torch.Tensor).to(torch.float32) / 255.0
        if np.random.randint(2):
            delta = np.random.uniform(-self.brightness_delta, self.brightness_delta) / 255.0
            img = (img + delta).clamp(0.0, 1.0)
        contrast_first = bool(np.random.randint(2))
        if contrast_first:
            img = self._contrast(img)
        if np.random.randint(2):
            img = F.adjust_saturation(img, float(np.random.uniform(*self.saturation_range)))
        if np.random.randint(2):
            img = F.adjust_hue(img, float(np.random.uniform(-self.hue_delta, self.hue_delta)) / 360.0)
        if not contrast_first:
            img = self._contrast(img)
        if self.channel_swap and np.random.randint(2):
            img = img[torch.from_numpy(np.random.permutation(3))]
        out = dict(results)
        out["img"] = tv_tensors.Image(img * 255.0)
        return out

    def __repr__(self) -> str:
        return (
            f"PhotoMetricDistortion(brightness_delta={self.brightness_delta}, contrast_range={self.contrast_range}, "
            f"saturation_range={self.saturation_range}, hue_delta={self.hue_delta})"
        )
