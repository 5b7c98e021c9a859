"""Keypoint heatmaps shared by the keypoint heads: Gaussian targets around ground-truth points and the
decoding of predicted heatmaps (local maxima, top-k peaks, features gathered at the peaks).

The Gaussian radius follows CornerNet (Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints"):
the largest radius such that a box whose corners (or center) move within it still overlaps the ground truth
with IoU >= ``min_overlap``; CenterNet ("Objects as Points") reuses it for centers.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from detcore.structures import ImageMeta


def gaussian_radius(height: float, width: float, min_overlap: float) -> float:
    """The smallest of the three radii of CornerNet's corner-shift cases (one corner in / both in / both
    out of the box), each the root of the quadratic that keeps the shifted box's IoU at ``min_overlap``.
    The first case keeps CornerNet's published coefficients, so radii equal the original implementation's."""
    h, w = float(height), float(width)
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 - math.sqrt(b2**2 - 16 * c2)) / 8
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def gaussian_kernel(radius: int, sigma: float, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> Tensor:
    """(2r+1, 2r+1) unnormalised Gaussian exp(-(x^2 + y^2) / 2 sigma^2); values below eps * max set to 0."""
    coords = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = (-(coords[None, :] ** 2 + coords[:, None] ** 2) / (2 * sigma * sigma)).exp()
    kernel[kernel < torch.finfo(dtype).eps * kernel.max()] = 0
    return kernel


def draw_gaussian(heatmap: Tensor, center: tuple[int, int], radius: int, peak: float = 1.0) -> Tensor:
    """Raise ``heatmap`` (H, W) in place to a Gaussian of ``radius`` (sigma = diameter / 6) centred at the
    integer point ``center`` = (x, y), scaled by ``peak``; the element-wise max keeps overlapping objects."""
    diameter = 2 * radius + 1
    kernel = gaussian_kernel(radius, diameter / 6, heatmap.dtype, heatmap.device)
    x, y = center
    height, width = heatmap.shape[:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return heatmap
    region = heatmap[y - top : y + bottom, x - left : x + right]
    patch = kernel[radius - top : radius + bottom, radius - left : radius + right]
    torch.maximum(region, patch * peak, out=region)
    return heatmap


def local_maximum(heat: Tensor, kernel: int = 3) -> Tensor:
    """``heat`` (N, C, H, W) with every value that is not the maximum of its ``kernel`` window set to 0."""
    peaks = F.max_pool2d(heat, kernel, stride=1, padding=(kernel - 1) // 2)
    return heat * (peaks == heat).to(heat.dtype)


def topk_peaks(scores: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The ``k`` best (class, position) entries of each image of (N, C, H, W) ``scores``: scores, flat
    position indices (y * W + x), classes, ys and xs, each (N, k); positions are floats."""
    batch, _, height, width = scores.shape
    top_scores, top_inds = scores.reshape(batch, -1).topk(k)
    classes = top_inds // (height * width)
    positions = top_inds % (height * width)
    ys = (positions // width).to(scores.dtype)
    xs = (positions % width).to(scores.dtype)
    return top_scores, positions, classes, ys, xs


def gather_at(feat: Tensor, positions: Tensor) -> Tensor:
    """(N, K, C) values of the (N, C, H, W) map ``feat`` at flat positions (N, K)."""
    batch, channels = feat.shape[:2]
    flat = feat.reshape(batch, channels, -1).permute(0, 2, 1)
    return flat.gather(1, positions[..., None].expand(-1, -1, channels))


def canvas_offset(meta: ImageMeta) -> tuple[float, float]:
    """(left, top) of the image on the canvas the test-time ``RandomCenterCropPad`` pasted it on, from the
    ``border`` it packed into ``meta.extra`` ((0, 0) without one): what decoded boxes are shifted back by."""
    border = meta.extra.get("border")
    return (0.0, 0.0) if border is None else (float(border[2]), float(border[0]))


def batch_input_size(metas: Sequence[ImageMeta]) -> tuple[int, int]:
    """(height, width) of the batch as MMDetection's keypoint heads see it (its ``batch_input_shape``, with
    no size divisor): the largest image (canvas) of the batch. Feature cells map to input pixels by this
    size over the heatmap's; detcore's extra padding to a multiple of 32 is not counted."""
    return max(int(m.img_shape[0]) for m in metas), max(int(m.img_shape[1]) for m in metas)
