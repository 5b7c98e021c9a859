"""Reference CARAFE upsampling (Wang et al. 2019): content-aware reassembly of k x k source neighbourhoods."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from detcore.ops.checks import check_floating, check_same_device, check_tensor


def carafe(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """Upsample features [N, C, H, W] by scale_factor s with per-pixel kernels masks [N, G*k*k, H*s, W*s].

    out[n, c, y, x] = sum_{dy, dx in [0, k)} features[n, c, y//s + dy - k//2, x//s + dx - k//2] (zero padded)
                      * masks[n, g*k*k + dy*k + dx, y, x], with group g = c // (C / G). Masks are used as given.
    """
    op = "carafe"
    features = check_tensor(op, "features", features, 4, "[N, C, H, W]")
    masks = check_tensor(op, "masks", masks, 4, "[N, G*k*k, H*s, W*s]")
    check_floating(op, "features", features)
    check_same_device(op, features=features, masks=masks)
    for name, val in (("kernel_size", kernel_size), ("group_size", group_size), ("scale_factor", scale_factor)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{op}: `{name}` must be a positive int, got {val!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"{op}: `kernel_size` must be odd so the neighbourhood is centred, got {kernel_size}")
    n, channels, height, width = features.shape
    taps = kernel_size * kernel_size
    if channels % group_size != 0:
        raise ValueError(f"{op}: feature channels {channels} must be divisible by group_size {group_size}")
    expected = (n, group_size * taps, height * scale_factor, width * scale_factor)
    if tuple(masks.shape) != expected:
        raise ValueError(f"{op}: `masks` must have shape [N, G*k*k, H*s, W*s] = {expected}, got {tuple(masks.shape)}")

    # [N, C*k*k, H*W] with the tap index fastest within each channel -> [N, G, C/G, k*k, H, W]
    patches = F.unfold(features, kernel_size, padding=kernel_size // 2)
    patches = patches.view(n, group_size, channels // group_size, taps, height, width)
    # output pixel (y, x) = (h*s + a, w*s + b) reads source pixel (h, w): masks as [N, G, k*k, H, s, W, s]
    weights = masks.view(n, group_size, taps, height, scale_factor, width, scale_factor).to(patches.dtype)
    out = torch.einsum("ngcthw,ngthawb->ngchawb", patches, weights)
    return out.reshape(n, channels, height * scale_factor, width * scale_factor)
