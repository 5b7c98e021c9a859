"""Geometric pre-processing (`003` §4.1.2): resize, flip, pad and the crops / expansion of SSD.

Every transform applies one ``torchvision.transforms.v2.functional`` kernel to the image and to
all registered box / mask / seg fields, so annotations move with the pixels. Randomness comes
from ``numpy.random`` (seeded per data-loader worker by ``detcore.data.loader``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.ops import box_iou
from torchvision.transforms.v2 import functional as F

from detcore.data.transforms.fields import (
    apply_spatial,
    boxes_from_masks,
    check_no_keypoints,
    image_hw,
    keep_ignored,
    keep_instances,
    nonempty_boxes,
)
from detcore.interfaces.data import Transform

FLIP_DIRECTIONS = ("horizontal", "vertical", "diagonal")


def _as_scales(scale: Any) -> list[tuple[int, int]]:
    """A scale ``(a, b)`` or a list of them -> list of integer pairs."""
    if scale is None:
        return []
    if len(scale) == 2 and all(isinstance(v, (int, float)) for v in scale):
        return [(int(scale[0]), int(scale[1]))]
    scales = [(int(s[0]), int(s[1])) for s in scale]
    if not scales:
        raise ValueError("Resize: the list of scales is empty")
    return scales


def rescaled_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """(new_h, new_w) that fits ``scale`` = (long edge, short edge) keeping the aspect ratio."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(height * factor + 0.5), int(width * factor + 0.5)


class Resize(Transform):
    """Resize the image, boxes, masks and seg maps (`000` §5.3 multi-scale training).

    ``scale`` is one (long, short) pair or a list of them (``img_scale`` is MMDetection's name).
    With several scales, ``multiscale_mode="value"`` picks one of them, ``"range"`` samples the
    long edge and the short edge uniformly between the scales' extremes. ``ratio_range`` instead
    multiplies the single scale by a random ratio. ``keep_ratio=False`` resizes to exactly
    (w, h) = scale. A ``results["scale"]`` set by ``MultiScaleFlipAug`` takes precedence.
    Adds ``scale``, ``scale_idx``, ``scale_factor`` (w, h; compounded), ``keep_ratio``, ``pad_shape``.
    """

    def __init__(
        self,
        scale: Any = None,
        multiscale_mode: str = "range",
        ratio_range: Sequence[float] | None = None,
        keep_ratio: bool = True,
        img_scale: Any = None,
    ) -> None:
        if scale is not None and img_scale is not None:
            raise ValueError("Resize: give either scale or img_scale (its MMDetection name), not both")
        if multiscale_mode not in ("value", "range"):
            raise ValueError(f"Resize: multiscale_mode must be 'value' or 'range', got {multiscale_mode!r}")
        self.scales = _as_scales(scale if scale is not None else img_scale)
        if ratio_range is not None and len(self.scales) != 1:
            raise ValueError("Resize: ratio_range needs exactly one scale")
        self.multiscale_mode = multiscale_mode
        self.ratio_range = tuple(ratio_range) if ratio_range is not None else None
        self.keep_ratio = keep_ratio

    def _pick_scale(self) -> tuple[tuple[int, int], int | None]:
        if self.ratio_range is not None:
            ratio = np.random.uniform(*self.ratio_range)
            long_edge, short_edge = self.scales[0]
            return (int(long_edge * ratio), int(short_edge * ratio)), None
        if len(self.scales) == 1:
            return self.scales[0], 0
        if self.multiscale_mode == "value":
            idx = int(np.random.randint(len(self.scales)))
            return self.scales[idx], idx
        longs = [max(s) for s in self.scales]
        shorts = [min(s) for s in self.scales]
        long_edge = int(np.random.randint(min(longs), max(longs) + 1))
        short_edge = int(np.random.randint(min(shorts), max(shorts) + 1))
        return (long_edge, short_edge), None

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "scale" in results:
            scale, idx = tuple(results["scale"]), results.get("scale_idx")
        elif self.scales:
            scale, idx = self._pick_scale()
        else:
            raise ValueError("Resize has no scale; set scale= or wrap it in MultiScaleFlipAug")
        height, width = image_hw(results)
        if self.keep_ratio:
            new_h, new_w = rescaled_size(height, width, scale)
        else:
            new_w, new_h = scale
        out = apply_spatial(results, lambda x: F.resize(x, [new_h, new_w], antialias=True))
        previous = results.get("scale_factor", (1.0, 1.0))
        out["scale_factor"] = (previous[0] * new_w / width, previous[1] * new_h / height)
        out["scale"] = scale
        out["scale_idx"] = idx
        out["keep_ratio"] = self.keep_ratio
        out["pad_shape"] = out["img_shape"]
        return out

    def __repr__(self) -> str:
        return (
            f"Resize(scale={self.scales}, multiscale_mode={self.multiscale_mode!r}, "
            f"ratio_range={self.ratio_range}, keep_ratio={self.keep_ratio})"
        )


def flip_kernel(direction: str):
    """The v2 kernel flipping an image / boxes / masks in ``direction``."""
    if direction == "horizontal":
        return F.horizontal_flip
    if direction == "vertical":
        return F.vertical_flip
    if direction == "diagonal":
        return lambda x: F.vertical_flip(F.horizontal_flip(x))
    raise ValueError(f"unknown flip direction {direction!r}; use one of {FLIP_DIRECTIONS}")


class RandomFlip(Transform):
    """Flip with probability ``prob`` in ``direction`` ("horizontal", "vertical", "diagonal").

    ``direction`` may be a list; ``prob`` is then one total probability split evenly, or one
    probability per direction. ``flip_ratio`` is MMDetection v1's name of ``prob``. A
    ``results["flip"]`` already set (by ``MultiScaleFlipAug``) is obeyed. Adds ``flip``, ``flip_direction``.
    """

    def __init__(
        self,
        prob: float | Sequence[float] | None = None,
        direction: str | Sequence[str] = "horizontal",
        flip_ratio: float | None = None,
    ) -> None:
        if prob is not None and flip_ratio is not None:
            raise ValueError("RandomFlip: give either prob or flip_ratio (its MMDetection v1 name), not both")
        prob = prob if prob is not None else flip_ratio
        self.directions = [direction] if isinstance(direction, str) else list(direction)
        for d in self.directions:
            flip_kernel(d)
        if prob is None:
            self.probs = [0.0] * len(self.directions)
        elif isinstance(prob, (int, float)):
            self.probs = [float(prob) / len(self.directions)] * len(self.directions)
        else:
            self.probs = [float(p) for p in prob]
            if len(self.probs) != len(self.directions):
                raise ValueError(f"RandomFlip: {len(self.probs)} probabilities for {len(self.directions)} directions")
        if sum(self.probs) > 1.0 + 1e-6 or min(self.probs) < 0:
            raise ValueError(f"RandomFlip: probabilities {self.probs} must be >= 0 and sum to at most 1")

    def _choose(self) -> str | None:
        u = np.random.rand()
        for direction, p in zip(self.directions, self.probs):
            if u < p:
                return direction
            u -= p
        return None

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if "flip" in results:
            direction = (results.get("flip_direction") or self.directions[0]) if results["flip"] else None
        else:
            direction = self._choose()
        if direction is None:
            out = dict(results)
            out["flip"], out["flip_direction"] = False, None
            return out
        out = apply_spatial(results, flip_kernel(direction))
        out["flip"], out["flip_direction"] = True, direction
        return out

    def __repr__(self) -> str:
        return f"RandomFlip(prob={self.probs}, direction={self.directions})"


class Pad(Transform):
    """Pad bottom / right to a fixed ``size`` (h, w) or to multiples of ``size_divisor``.

    The image is filled with ``pad_val``, masks with 0, seg maps with ``seg_pad_val``. ``img_shape``
    (the valid region) is kept; adds ``pad_shape``, ``pad_fixed_size``, ``pad_size_divisor``.
    """

    def __init__(
        self,
        size: Sequence[int] | None = None,
        size_divisor: int | None = None,
        pad_val: float = 0,
        seg_pad_val: int = 255,
    ) -> None:
        if (size is None) == (size_divisor is None):
            raise ValueError("Pad: give exactly one of size or size_divisor")
        self.size = tuple(size) if size is not None else None
        self.size_divisor = size_divisor
        self.pad_val = pad_val
        self.seg_pad_val = seg_pad_val

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        height, width = image_hw(results)
        if self.size is not None:
            target_h, target_w = self.size
            if target_h < height or target_w < width:
                raise ValueError(f"Pad: fixed size {self.size} is smaller than the image ({height}, {width})")
        else:
            d = self.size_divisor
            target_h, target_w = -(-height // d) * d, -(-width // d) * d
        padding = [0, 0, target_w - width, target_h - height]
        seg_keys = set(results.get("seg_fields", []))

        out = dict(results)
        for key in ["img", *results.get("bbox_fields", []), *results.get("mask_fields", []), *seg_keys]:
            if key not in results:
                continue
            value = results[key]
            fill = self.pad_val if key == "img" else self.seg_pad_val if key in seg_keys else 0
            if isinstance(value, tv_tensors.BoundingBoxes):
                out[key] = F.pad(value, padding)
            else:
                out[key] = F.pad(value, padding, fill=fill)
        out["pad_shape"] = (target_h, target_w)
        out["pad_fixed_size"] = self.size
        out["pad_size_divisor"] = self.size_divisor
        return out

    def __repr__(self) -> str:
        return f"Pad(size={self.size}, size_divisor={self.size_divisor}, pad_val={self.pad_val})"


def _crop(results: dict[str, Any], top: int, left: int, height: int, width: int) -> dict[str, Any]:
    """Crop image and every field; drop objects left without area (or without mask pixels)."""
    out = apply_spatial(results, lambda x: F.crop(x, top, left, height, width))
    if "gt_bboxes" in out:
        out = keep_instances(out, nonempty_boxes(out["gt_bboxes"]))
    if "gt_bboxes_ignore" in out:
        out = keep_ignored(out, nonempty_boxes(out["gt_bboxes_ignore"]))
    out = boxes_from_masks(out)
    out["pad_shape"] = out["img_shape"]
    return out


class RandomCrop(Transform):
    """Crop a random ``crop_size`` (h, w) window (clipped to the image); with ``crop_type="absolute_range"``
    ``crop_size`` is (min, max) and the window's height and width are drawn in it (DETR's training crop).

    Boxes are shifted and clipped; objects left without area are dropped, and when masks are
    loaded each box becomes its cropped mask's tight box. If the image had objects and none
    survives, the sample is dropped (returns None: the dataset draws another image) unless
    ``allow_negative_crop``.
    """

    def __init__(self, crop_size: Sequence[int], allow_negative_crop: bool = False, crop_type: str = "absolute") -> None:
        if len(crop_size) != 2 or min(crop_size) <= 0:
            raise ValueError(f"RandomCrop: crop_size must be two positive ints (h, w), got {crop_size}")
        if crop_type not in ("absolute", "absolute_range"):
            raise ValueError(f"RandomCrop: crop_type must be 'absolute' or 'absolute_range', got {crop_type!r}")
        if crop_type == "absolute_range" and crop_size[0] > crop_size[1]:
            raise ValueError(f"RandomCrop: an absolute_range crop_size is (min, max), got {crop_size}")
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.allow_negative_crop = allow_negative_crop
        self.crop_type = crop_type

    def window(self, height: int, width: int) -> tuple[int, int]:
        """The (h, w) of this sample's crop for an image of height x width."""
        if self.crop_type == "absolute":
            return min(self.crop_size[0], height), min(self.crop_size[1], width)
        low, high = self.crop_size
        crop_h = int(np.random.randint(min(height, low), min(height, high) + 1))
        crop_w = int(np.random.randint(min(width, low), min(width, high) + 1))
        return crop_h, crop_w

    def __call__(self, results: dict[str, Any]) -> dict[str, Any] | None:
        height, width = image_hw(results)
        crop_h, crop_w = self.window(height, width)
        top = int(np.random.randint(0, height - crop_h + 1))
        left = int(np.random.randint(0, width - crop_w + 1))
        had_objects = "gt_bboxes" in results and len(results["gt_bboxes"]) > 0
        out = _crop(results, top, left, crop_h, crop_w)
        if had_objects and len(out["gt_bboxes"]) == 0 and not self.allow_negative_crop:
            return None
        return out

    def __repr__(self) -> str:
        return (f"RandomCrop(crop_size={self.crop_size}, allow_negative_crop={self.allow_negative_crop}, "
                f"crop_type={self.crop_type!r})")


class Expand(Transform):
    """SSD zoom-out: with probability ``prob`` place the image on a ``ratio`` times larger canvas.

    The canvas is filled with ``mean`` (RGB; ``to_rgb=False`` means ``mean`` is given in BGR
    order as in Caffe-style configs); ``ratio`` is uniform in ``ratio_range``.
    """

    def __init__(
        self,
        mean: Sequence[float] = (0, 0, 0),
        to_rgb: bool = True,
        ratio_range: Sequence[float] = (1, 4),
        prob: float = 0.5,
        seg_ignore_label: int = 255,
    ) -> None:
        self.mean = [float(m) for m in (mean if to_rgb else list(mean)[::-1])]
        self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        if self.ratio_range[0] < 1 or self.ratio_range[1] < self.ratio_range[0]:
            raise ValueError(f"Expand: ratio_range must satisfy 1 <= min <= max, got {ratio_range}")
        self.prob = prob
        self.seg_ignore_label = seg_ignore_label

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if np.random.rand() >= self.prob:
            return results
        height, width = image_hw(results)
        ratio = np.random.uniform(*self.ratio_range)
        new_h, new_w = int(height * ratio), int(width * ratio)
        left = int(np.random.uniform(0, new_w - width))
        top = int(np.random.uniform(0, new_h - height))
        padding = [left, top, new_w - width - left, new_h - height - top]
        seg_keys = set(results.get("seg_fields", []))
        check_no_keypoints(results)

        def kernel_for(key: str):
            value = results[key]
            if key == "img":
                return F.pad(value, padding, fill=self.mean)
            if isinstance(value, tv_tensors.BoundingBoxes):
                return F.pad(value, padding)
            return F.pad(value, padding, fill=self.seg_ignore_label if key in seg_keys else 0)

        out = dict(results)
        for key in ["img", *results.get("bbox_fields", []), *results.get("mask_fields", []), *seg_keys]:
            if key in results:
                out[key] = kernel_for(key)
        out["img_shape"] = out["pad_shape"] = (new_h, new_w)
        return out

    def __repr__(self) -> str:
        return f"Expand(mean={self.mean}, ratio_range={self.ratio_range}, prob={self.prob})"


class MinIoURandomCrop(Transform):
    """SSD crop: a random patch whose IoU with every object is at least a random ``min_iou``.

    The patch side is in [``min_crop_size``, 1] of the image with aspect ratio in [0.5, 2]; objects
    whose centre falls outside the patch are dropped. The mode "1" (no crop) is one of the choices.
    """

    def __init__(
        self,
        min_ious: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size: float = 0.3,
        max_trials: int = 50,
        max_rounds: int = 100,
    ) -> None:
        self.min_ious = tuple(float(v) for v in min_ious)
        self.min_crop_size = min_crop_size
        self.max_trials = max_trials
        self.max_rounds = max_rounds

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        height, width = image_hw(results)
        boxes = results["gt_bboxes"].as_subclass(torch.Tensor) if "gt_bboxes" in results else torch.zeros((0, 4))
        modes = (1.0, *self.min_ious)
        for _ in range(self.max_rounds):
            min_iou = modes[np.random.randint(len(modes))]
            if min_iou >= 1.0:
                return results
            for _ in range(self.max_trials):
                new_w = np.random.uniform(self.min_crop_size * width, width)
                new_h = np.random.uniform(self.min_crop_size * height, height)
                if not 0.5 <= new_h / new_w <= 2:
                    continue
                left = np.random.uniform(width - new_w)
                top = np.random.uniform(height - new_h)
                patch = torch.tensor([[left, top, left + new_w, top + new_h]], dtype=torch.float32)
                x1, y1, x2, y2 = (int(v) for v in patch[0])
                if x2 <= x1 or y2 <= y1:
                    continue
                if len(boxes):
                    if box_iou(patch, boxes).min() < min_iou:
                        continue
                    centers = (boxes[:, :2] + boxes[:, 2:]) / 2
                    inside = (
                        (centers[:, 0] > x1) & (centers[:, 1] > y1) & (centers[:, 0] < x2) & (centers[:, 1] < y2)
                    )
                    if not inside.any():
                        continue
                    results = keep_instances(results, inside)
                return _crop(results, y1, x1, y2 - y1, x2 - x1)
        return results

    def __repr__(self) -> str:
        return f"MinIoURandomCrop(min_ious={self.min_ious}, min_crop_size={self.min_crop_size})"


class SegRescale(Transform):
    """Rescale ``gt_seg_map`` (and other seg fields) by ``scale_factor`` with nearest interpolation.

    HTC-style semantic heads predict at a fraction of the image (1/8); collate pads the rescaled map to
    the same fraction of the batch shape.
    """

    def __init__(self, scale_factor: float = 1.0) -> None:
        self.scale_factor = scale_factor

    def __call__(self, results: dict[str, Any]) -> dict[str, Any]:
        if self.scale_factor == 1:
            return results
        out = dict(results)
        for key in results.get("seg_fields", []):
            seg = results[key]
            h, w = seg.shape[-2:]
            size = [int(h * self.scale_factor + 0.5), int(w * self.scale_factor + 0.5)]
            out[key] = F.resize(seg, size, interpolation=F.InterpolationMode.NEAREST)
        return out

    def __repr__(self) -> str:
        return f"SegRescale(scale_factor={self.scale_factor})"
