"""Reference RoI feature extractors: RoIAlign (avg via torchvision, max in PyTorch), RoIPool and deformable RoI pooling.

The pure-PyTorch paths share `_pool_bins`, which samples every bin of every RoI on a regular grid of bilinear
points exactly where torchvision's RoIAlign samples them, then averages or maxes the samples of each bin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torchvision
from torch import Tensor

from detcore.ops.checks import check_choice, check_rois, check_tensor, pair

POOL_MODES = ("avg", "max")
# Fewest RoIs per thread worth a split: below this the thread hand-off costs more than it saves.
_MIN_ROIS_PER_THREAD = 16
_executor: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool)
# Upper bound on RoIs x bins x samples x channels gathered at once, to bound the reference's memory.
_MAX_GATHERED_VALUES = 1 << 24


def _bilinear(flat: Tensor, height: int, width: int, batch: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Bilinear samples with RoIAlign's border rule: zero outside [-1, H] x [-1, W], else coordinates clamped into the map.

    flat: input as [N*H*W, C]; batch: [k] image index per RoI; y, x: [k, ...] pixel coordinates. Returns [k, ..., C].
    """
    valid = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y0 = y.detach().floor().long()
    x0 = x.detach().floor().long()
    at_bottom = y0 >= height - 1
    at_right = x0 >= width - 1
    y0 = torch.where(at_bottom, torch.full_like(y0, height - 1), y0)
    x0 = torch.where(at_right, torch.full_like(x0, width - 1), x0)
    y1 = torch.where(at_bottom, y0, y0 + 1)
    x1 = torch.where(at_right, x0, x0 + 1)
    y = torch.where(at_bottom, y0.to(y.dtype), y)
    x = torch.where(at_right, x0.to(x.dtype), x)
    ly = y - y0.to(y.dtype)
    lx = x - x0.to(x.dtype)
    hy = 1 - ly
    hx = 1 - lx

    base = (batch * (height * width)).view(-1, *([1] * (y.dim() - 1)))
    # the four corners stacked first: one gather and one weighted sum over [4, samples, C]
    index = torch.stack([y0 * width + x0, y0 * width + x1, y1 * width + x0, y1 * width + x1]) + base
    weight = torch.stack([hy * hx, hy * lx, ly * hx, ly * lx]) * valid.to(y.dtype)
    corners = flat.index_select(0, index.reshape(-1)).view(4, -1, flat.shape[1])
    value = (corners * weight.reshape(4, -1, 1)).sum(dim=0)
    return value.view(*y.shape, flat.shape[1])


def _pool_bins(
    input: Tensor,
    rois: Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
    mode: str,
    offset: Tensor | None = None,
    gamma: float = 0.0,
) -> Tensor:
    """Pool each RoI bin over its grid of bilinear samples ('avg' mean or 'max'), optionally shifting bins by `offset`.

    Grid per RoI: sampling_ratio x sampling_ratio if > 0, else ceil(roi_h / oh) x ceil(roi_w / ow); a bin with no
    samples (empty RoI when aligned) is 0. Offsets shift bin (i, j) by gamma * offset[k, :, i, j] * (roi_w, roi_h).
    """
    num_rois, channels = rois.shape[0], input.shape[1]
    out_h, out_w = output_size
    height, width = input.shape[2], input.shape[3]
    output = input.new_zeros((num_rois, channels, out_h, out_w))
    if num_rois == 0 or input.numel() == 0:
        return output

    rois = rois.detach()
    shift = 0.5 if aligned else 0.0
    batch = rois[:, 0].long()
    start_x = rois[:, 1] * spatial_scale - shift
    start_y = rois[:, 2] * spatial_scale - shift
    roi_w = rois[:, 3] * spatial_scale - shift - start_x
    roi_h = rois[:, 4] * spatial_scale - shift - start_y
    if not aligned:
        roi_w = roi_w.clamp(min=1.0)
        roi_h = roi_h.clamp(min=1.0)
    bin_w = roi_w / out_w
    bin_h = roi_h / out_h
    if sampling_ratio > 0:
        grid_h = torch.full_like(batch, sampling_ratio)
        grid_w = torch.full_like(batch, sampling_ratio)
    else:
        grid_h = torch.ceil(roi_h / out_h).long()
        grid_w = torch.ceil(roi_w / out_w).long()

    rows = torch.arange(out_h, dtype=input.dtype, device=input.device)
    cols = torch.arange(out_w, dtype=input.dtype, device=input.device)
    flat = input.permute(0, 2, 3, 1).reshape(-1, channels)
    grid_pairs = torch.stack([grid_h, grid_w], dim=1)
    for gh, gw in torch.unique(grid_pairs, dim=0).tolist():
        if gh <= 0 or gw <= 0:
            continue
        members = torch.nonzero((grid_h == gh) & (grid_w == gw)).flatten()
        per_roi = out_h * out_w * gh * gw * channels
        chunk = max(1, _MAX_GATHERED_VALUES // per_roi)
        frac_y = torch.arange(gh, dtype=input.dtype, device=input.device) + 0.5
        frac_x = torch.arange(gw, dtype=input.dtype, device=input.device) + 0.5
        for part in members.split(chunk):
            bh, bw = bin_h[part, None, None], bin_w[part, None, None]
            # y: [k, oh, gh], x: [k, ow, gw]
            y = start_y[part, None, None] + rows[None, :, None] * bh + frac_y[None, None, :] * bh / gh
            x = start_x[part, None, None] + cols[None, :, None] * bw + frac_x[None, None, :] * bw / gw
            # full sample grid: [k, oh, ow, gh, gw]
            ys = y[:, :, None, :, None].expand(-1, -1, out_w, -1, gw)
            xs = x[:, None, :, None, :].expand(-1, out_h, -1, gh, -1)
            if offset is not None:
                off = offset[part]
                ys = ys + (gamma * roi_h[part, None, None] * off[:, 1])[..., None, None]
                xs = xs + (gamma * roi_w[part, None, None] * off[:, 0])[..., None, None]
            samples = _bilinear(flat, height, width, batch[part], ys, xs).flatten(3, 4)
            pooled = samples.mean(dim=3) if mode == "avg" else samples.amax(dim=3)
            output = output.index_put((part,), pooled.permute(0, 3, 1, 2))
    return output


def _thread_pool() -> ThreadPoolExecutor:
    """One pool of torch's thread count per process, remade only when that count changes (the old one is shut
    down) or after a fork (the child has none of the parent's threads)."""
    global _executor
    threads = torch.get_num_threads()
    if _executor is None or _executor[:2] != (os.getpid(), threads):
        if _executor is not None and _executor[0] == os.getpid():
            _executor[2].shutdown(wait=False)
        _executor = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="detcore-roi"))
    return _executor[2]


def _split_over_threads(pool: Callable[[Tensor, Tensor], Tensor], input: Tensor, rois: Tensor) -> Tensor:
    """``pool(input, rois)``, with the RoIs split over torch's CPU threads at inference.

    torchvision's CPU RoI kernels loop over RoIs on one thread, and release the GIL: chunks of RoIs pooled in
    Python threads give the same values in about 1 / threads of the time. Training (autograd) takes one call.
    """
    workers = min(torch.get_num_threads(), rois.shape[0] // _MIN_ROIS_PER_THREAD)
    if input.device.type != "cpu" or workers < 2 or (torch.is_grad_enabled() and input.requires_grad):
        return pool(input, rois)
    inference = torch.is_inference_mode_enabled()

    def run(chunk: Tensor) -> Tensor:
        with torch.inference_mode(inference), torch.no_grad():  # thread-local modes: as the caller's
            return pool(input, chunk)

    return torch.cat(list(_thread_pool().map(run, rois.chunk(workers))))


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
    pool_mode: str = "avg",
) -> Tensor:
    """RoIAlign: [K, C, oh, ow] features of rois [K, 5] (batch_index, x1, y1, x2, y2) in input-image coordinates.

    "avg" is torchvision.ops.roi_align; "max" takes the max (instead of the mean) of the same bilinear samples of a
    bin, samples outside the map counting as 0. sampling_ratio <= 0 is adaptive: ceil(roi_size / output_size).
    """
    input, rois = check_rois("roi_align", input, rois)
    size = pair("roi_align", "output_size", output_size)
    check_choice("roi_align", "pool_mode", pool_mode, POOL_MODES)
    if pool_mode == "avg":
        return _split_over_threads(
            lambda x, r: torchvision.ops.roi_align(x, r, size, float(spatial_scale), int(sampling_ratio), bool(aligned)),
            input, rois,
        )
    return _pool_bins(input, rois, size, float(spatial_scale), int(sampling_ratio), bool(aligned), "max")


def roi_pool(input: Tensor, rois: Tensor, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> Tensor:
    """RoIPool (Fast R-CNN, torchvision.ops.roi_pool): max over the integer-quantized bins of each RoI."""
    input, rois = check_rois("roi_pool", input, rois)
    size = pair("roi_pool", "output_size", output_size)
    return _split_over_threads(lambda x, r: torchvision.ops.roi_pool(x, r, size, float(spatial_scale)), input, rois)


def deform_roi_pool(
    input: Tensor,
    rois: Tensor,
    offset: Tensor | None,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
    aligned: bool = True,
) -> Tensor:
    """Deformable RoI pooling (Dai et al. 2017): RoIAlign(avg) whose bins are shifted by learnt offsets.

    For RoI k with corners scaled by spatial_scale (and shifted by -0.5 when ``aligned``, as mmcv's
    DeformRoIPool does), roi_w = x2 - x1 and roi_h = y2 - y1 (at least 1 when not aligned), bin sizes
    roi_w / ow and roi_h / oh; bin (i, j) is moved by (gamma * offset[k, 0, i, j] * roi_w,
    gamma * offset[k, 1, i, j] * roi_h) (x then y), then averaged over the same bilinear sampling grid as
    roi_align (sampling_ratio <= 0: ceil(roi_h / oh) x ceil(roi_w / ow) points, RoIAlign's border rule).
    offset None gives exactly roi_align(aligned=aligned). Differentiable w.r.t. input and offset.
    """
    input, rois = check_rois("deform_roi_pool", input, rois)
    size = pair("deform_roi_pool", "output_size", output_size)
    if offset is not None:
        offset = check_tensor("deform_roi_pool", "offset", offset, 4, "[K, 2, oh, ow]")
        expected = (rois.shape[0], 2, size[0], size[1])
        if tuple(offset.shape) != expected:
            raise ValueError(
                f"deform_roi_pool: `offset` must have shape [K, 2, oh, ow] = {expected}, got {tuple(offset.shape)}"
            )
        if offset.dtype != input.dtype or offset.device != input.device:
            raise TypeError(
                f"deform_roi_pool: `offset` must match `input` dtype/device ({input.dtype}, {input.device}), "
                f"got ({offset.dtype}, {offset.device})"
            )
    return _pool_bins(input, rois, size, float(spatial_scale), int(sampling_ratio), bool(aligned), "avg", offset,
                      float(gamma))
