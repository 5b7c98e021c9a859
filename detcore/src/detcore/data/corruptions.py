"""The 15 ImageNet-C corruptions at severities 1-5 (Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019), for images of any size, as the detection
robustness benchmark uses them (Michaelis et al., "Benchmarking Robustness in Object Detection", 2019).

Written here with numpy / torch / Pillow / matplotlib rather than through the ``imagecorruptions`` package,
which no longer imports with current setuptools (``pkg_resources``) and scikit-image (``multichannel``).
Severity parameters follow the benchmark's tables. Two departures: ``frost`` overlays a procedurally grown
ice texture (the benchmark ships six photographs of frost, which are not redistributed here), and
``motion_blur`` / ``snow`` blur with a Gaussian-weighted line kernel instead of ImageMagick's motion blur.
Every kernel takes and returns an (H, W, 3) uint8 RGB array and draws randomness from ``rng``.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

NOISE = ("gaussian_noise", "shot_noise", "impulse_noise")
BLUR = ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur")
WEATHER = ("snow", "frost", "fog", "brightness")
DIGITAL = ("contrast", "elastic_transform", "pixelate", "jpeg_compression")
BENCHMARK = NOISE + BLUR + WEATHER + DIGITAL
GROUPS = {"benchmark": BENCHMARK, "all": BENCHMARK, "noise": NOISE, "blur": BLUR, "weather": WEATHER,
          "digital": DIGITAL}


def _check(image: np.ndarray, severity: int) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"corruptions take (H, W, 3) arrays, got {getattr(image, 'shape', type(image))}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"corruption severity must be 1..5, got {severity}")
    return image.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each channel of (H, W, C) ``x`` convolved with 2-D ``kernel`` (reflect padding)."""
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].float()
    k = torch.from_numpy(np.ascontiguousarray(kernel)).float()
    kh, kw = k.shape
    pad = (kw // 2, kw - 1 - kw // 2, kh // 2, kh - 1 - kh // 2)
    mode = "reflect" if min(t.shape[-2:]) > max(kh, kw) else "replicate"
    t = F.pad(t, pad, mode=mode)
    out = F.conv2d(t, k.flip(0, 1)[None, None].expand(t.shape[1], 1, kh, kw).contiguous(), groups=t.shape[1])
    return out[0].numpy().transpose(1, 2, 0)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, int(math.ceil(3 * sigma)))
    ax = np.arange(-radius, radius + 1, dtype=np.float32)
    g = np.exp(-(ax**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    squeeze = x.ndim == 2
    out = _filter(x[..., None] if squeeze else x, _gaussian_kernel(sigma))
    return out[..., 0] if squeeze else out


def _zoom_center(x: np.ndarray, factor: float) -> np.ndarray:
    """The centre 1/``factor`` of (H, W, C) ``x`` zoomed back to (H, W)."""
    h, w = x.shape[:2]
    ch, cw = max(1, int(math.ceil(h / factor))), max(1, int(math.ceil(w / factor)))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = torch.from_numpy(np.ascontiguousarray(x[top : top + ch, left : left + cw].transpose(2, 0, 1)))[None]
    out = F.interpolate(crop.float(), size=(h, w), mode="bilinear", align_corners=False)
    return out[0].numpy().transpose(1, 2, 0)


def _line_kernel(radius: int, sigma: float, angle: float) -> np.ndarray:
    """A Gaussian-weighted line of ``radius`` pixels from the centre at ``angle`` degrees (motion blur)."""
    size = 2 * radius + 1
    kernel = np.zeros((size, size), np.float32)
    steps = np.arange(radius + 1, dtype=np.float32)
    weights = np.exp(-(steps**2) / (2 * sigma**2))
    rad = math.radians(angle)
    xs = np.round(radius + steps * math.cos(rad)).astype(int)
    ys = np.round(radius - steps * math.sin(rad)).astype(int)
    np.add.at(kernel, (ys, xs), weights)
    return kernel / kernel.sum()


def _hsv_shift(x: np.ndarray, channel: int, scale: float, shift: float) -> np.ndarray:
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    hsv = rgb_to_hsv(np.clip(x, 0, 1))
    hsv[..., channel] = np.clip(hsv[..., channel] * scale + shift, 0, 1)
    return hsv_to_rgb(hsv)


# -- noise ----------------------------------------------------------------------------------------
def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    x = _check(image, severity)
    return _to_uint8(x + rng.normal(size=x.shape, scale=c))


def shot_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = (60, 25, 12, 5, 3)[severity - 1]
    x = _check(image, severity)
    return _to_uint8(rng.poisson(x * c) / c)


def impulse_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper: a fraction ``c`` of the values set to 0 or 1 (half each)."""
    c = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    x = _check(image, severity).copy()
    hit = rng.random(x.shape) < c
    x[hit] = (rng.random(int(hit.sum())) < 0.5).astype(np.float32)
    return _to_uint8(x)


# -- blur -----------------------------------------------------------------------------------------
def defocus_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))[severity - 1]
    x = _check(image, severity)
    extent = max(8, radius)
    ax = np.arange(-extent, extent + 1)
    xx, yy = np.meshgrid(ax, ax)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk = _gaussian(disk / disk.sum(), alias_blur)
    return _to_uint8(_filter(x, disk / disk.sum()))


def glass_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, locally swap pixels with random neighbours ``iterations`` times, blur again."""
    sigma, max_delta, iterations = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))[severity - 1]
    x = _gaussian(_check(image, severity), sigma)
    h, w = x.shape[:2]
    for _ in range(iterations):
        for row in range(h - max_delta - 1, max_delta - 1, -1):
            dx = rng.integers(-max_delta, max_delta, size=w)
            dy = rng.integers(-max_delta, max_delta, size=w)
            cols = np.arange(w)
            valid = (cols >= max_delta) & (cols < w - max_delta)
            cols, dx, dy = cols[valid][::-1], dx[valid][::-1], dy[valid][::-1]
            for col, ddx, ddy in zip(cols, dx, dy):
                r2, c2 = row + ddy, col + ddx
                x[row, col], x[r2, c2] = x[r2, c2].copy(), x[row, col].copy()
    return _to_uint8(_gaussian(x, sigma))


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[severity - 1]
    x = _check(image, severity)
    return _to_uint8(_filter(x, _line_kernel(radius, sigma, float(rng.uniform(-45, 45)))))


def zoom_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    zooms = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
             np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))[severity - 1]
    x = _check(image, severity)
    out = x.copy()
    for factor in zooms:
        out += _zoom_center(x, float(factor))
    return _to_uint8(out / (len(zooms) + 1))


# -- weather --------------------------------------------------------------------------------------
def _plasma_fractal(size: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) diamond-square height map in [0, 1]; ``size`` a power of two."""
    grid = np.zeros((size, size), np.float64)
    step, wibble = size, 100.0
    while step >= 2:
        half = step // 2
        wibble /= wibble_decay
        # squares: centre of each square = mean of its corners + noise
        corners = grid[0:size:step, 0:size:step]
        mean = (corners + np.roll(corners, -1, 0) + np.roll(corners, -1, 1) + np.roll(np.roll(corners, -1, 0), -1, 1)) / 4
        grid[half:size:step, half:size:step] = mean + rng.uniform(-wibble, wibble, mean.shape)
        # diamonds: the edge midpoints = mean of their four neighbours + noise
        for r0, c0 in ((0, half), (half, 0)):
            up = grid[(np.arange(r0, size, step) - half) % size][:, c0:size:step]
            down = grid[(np.arange(r0, size, step) + half) % size][:, c0:size:step]
            left = grid[r0:size:step][:, (np.arange(c0, size, step) - half) % size]
            right = grid[r0:size:step][:, (np.arange(c0, size, step) + half) % size]
            mean = (up + down + left + right) / 4
            grid[r0:size:step, c0:size:step] = mean + rng.uniform(-wibble, wibble, mean.shape)
        step = half
    grid -= grid.min()
    return grid / max(grid.max(), 1e-12)


def fog(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    strength, decay = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))[severity - 1]
    x = _check(image, severity)
    h, w = x.shape[:2]
    size = 1 << max(1, math.ceil(math.log2(max(h, w))))
    max_val = x.max()
    x = x + strength * _plasma_fractal(size, decay, rng)[:h, :w, None]
    return _to_uint8(x * max_val / (max_val + strength))


def _frost_texture(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Procedural ice: fine fractal noise plus bright crystalline streaks, (h, w, 3) in [0, 1]."""
    size = 1 << max(1, math.ceil(math.log2(max(h, w))))
    base = _plasma_fractal(size, 1.2, rng)[:h, :w]
    streaks = np.zeros((h, w), np.float32)
    for _ in range(max(4, (h * w) // 400)):
        r, c = int(rng.integers(0, h)), int(rng.integers(0, w))
        length, angle = int(rng.integers(3, max(4, min(h, w) // 4))), float(rng.uniform(0, 360))
        kernel = _line_kernel(length, length / 2, angle)
        k = kernel.shape[0] // 2
        r0, r1, c0, c1 = max(0, r - k), min(h, r + k + 1), max(0, c - k), min(w, c + k + 1)
        streaks[r0:r1, c0:c1] += kernel[r0 - r + k : r1 - r + k, c0 - c + k : c1 - c + k] * length
    ice = 0.6 * base + 0.6 * np.clip(streaks, 0, 1)
    ice = np.clip(ice, 0, 1)
    return np.stack([ice * 0.85, ice * 0.92, ice], axis=-1)


def frost(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    keep, add = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))[severity - 1]
    x = _check(image, severity)
    return _to_uint8(keep * x + add * _frost_texture(x.shape[0], x.shape[1], rng))


def snow(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, blend = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55))[severity - 1]
    x = _check(image, severity)
    h, w = x.shape[:2]
    layer = rng.normal(size=(h, w, 1), loc=loc, scale=scale).astype(np.float32)
    layer = _zoom_center(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.clip(_filter(layer, _line_kernel(radius, sigma, float(rng.uniform(-135, -45)))), 0, 1)
    grey = x.mean(axis=2, keepdims=True)
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return _to_uint8(x + layer + np.rot90(layer, k=2))


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    return _to_uint8(_hsv_shift(_check(image, severity), 2, 1.0, c))


# -- digital --------------------------------------------------------------------------------------
def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.4, 0.3, 0.2, 0.1, 0.05)[severity - 1]
    x = _check(image, severity)
    means = x.mean(axis=(0, 1), keepdims=True)
    return _to_uint8((x - means) * c + means)


def elastic_transform(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Each pixel moved by a smooth random field (Gaussian-filtered noise, sigma 1% of the image side)."""
    alpha = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)[severity - 1]
    x = _check(image, severity)
    h, w = x.shape[:2]
    max_d = h * 0.005
    sigma = max(0.5, 0.01 * min(h, w))
    dx = _gaussian(rng.uniform(-max_d, max_d, (h, w)).astype(np.float32), sigma) * alpha
    dy = _gaussian(rng.uniform(-max_d, max_d, (h, w)).astype(np.float32), sigma) * alpha
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    grid = np.stack([(xs + dx) / max(w - 1, 1) * 2 - 1, (ys + dy) / max(h - 1, 1) * 2 - 1], axis=-1)
    t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
    out = F.grid_sample(t, torch.from_numpy(grid)[None], mode="bilinear", padding_mode="reflection", align_corners=True)
    return _to_uint8(out[0].numpy().transpose(1, 2, 0))


def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = (0.6, 0.5, 0.4, 0.3, 0.25)[severity - 1]
    _check(image, severity)
    pil = Image.fromarray(image)
    w, h = pil.size
    small = pil.resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
    return np.asarray(small.resize((w, h), Image.BOX))


def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    quality = (25, 18, 15, 10, 7)[severity - 1]
    _check(image, severity)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    name: globals()[name] for name in BENCHMARK
}


def corruption_names(group: str = "benchmark") -> tuple[str, ...]:
    if group not in GROUPS:
        raise ValueError(f"unknown corruption group {group!r}; use one of {', '.join(GROUPS)}")
    return GROUPS[group]


def corrupt(image: np.ndarray, corruption: str, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``image`` (H, W, 3 uint8) with ``corruption`` applied at ``severity`` (1-5)."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; the 15 are: {', '.join(BENCHMARK)}")
    if int(severity) not in (1, 2, 3, 4, 5):
        raise ValueError(f"corruption severity must be 1..5, got {severity}")
    return CORRUPTIONS[corruption](np.asarray(image), int(severity), rng or np.random.default_rng())
