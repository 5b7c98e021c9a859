"""The det-ops-cuda `OpsBackend`: Python wrappers around the compiled kernels in ``det_ops_cuda._C``.

Every op has the signature and semantics of its namesake in ``detcore.ops.reference``; differentiable ops are
``torch.autograd.Function``s whose backward runs the compiled backward kernel. Kernels compute in float32 or float64;
other floating dtypes (half, bfloat16) are computed in float32 and cast back.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from detcore.ops.checks import check_boxes_scores as _boxes_scores
from detcore.ops.checks import check_choice as _choice
from detcore.ops.checks import check_floating as _floating
from detcore.ops.checks import check_focal_loss_args
from detcore.ops.checks import check_rois as _input_rois
from detcore.ops.checks import check_tensor as _tensor
from detcore.ops.checks import pair as _pair
from torch.autograd.function import FunctionCtx, once_differentiable

BACKEND_NAME = "det-ops-cuda"
OP_NAMES = (
    "nms",
    "batched_nms",
    "soft_nms",
    "roi_align",
    "roi_pool",
    "deform_conv2d",
    "deform_roi_pool",
    "multi_scale_deformable_attention",
    "corner_pool",
    "sigmoid_focal_loss",
    "carafe",
)
SOFT_NMS_METHODS = {"linear": 0, "gaussian": 1, "naive": 2}
CORNER_POOL_MODES = {"top": 0, "bottom": 1, "left": 2, "right": 3}
POOL_MODES = ("avg", "max")
REDUCTIONS = ("none", "mean", "sum")
_KERNEL_DTYPES = (torch.float32, torch.float64)

_ext: ModuleType | None = None


def extension() -> ModuleType:
    """The compiled module ``det_ops_cuda._C``, imported on first use with an actionable error if it is missing."""
    global _ext
    if _ext is None:
        try:
            _ext = importlib.import_module("det_ops_cuda._C")
        except ImportError as exc:
            raise ImportError(
                "det_ops_cuda._C (the compiled kernels) cannot be imported: "
                f"{exc}. Rebuild with `pip install --no-build-isolation --force-reinstall ./ops-cuda` "
                "against the installed torch, or uninstall det-ops-cuda to use detcore's reference ops."
            ) from exc
    return _ext


# ---------------------------------------------------------------------------------------------------------------
# argument checks (cheap shape/choice checks; errors name the op and the argument like the reference's)


def _kernel_dtype(t: Tensor) -> torch.dtype:
    """The dtype the kernels compute in for a tensor of t's dtype."""
    return t.dtype if t.dtype in _KERNEL_DTYPES else torch.float32


# ---------------------------------------------------------------------------------------------------------------
# NMS family (not differentiable: they return indices; soft_nms returns detached rescored boxes)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes kept by greedy NMS, by decreasing score (torchvision.ops.nms semantics)."""
    _boxes_scores("nms", boxes, scores)
    dtype = _kernel_dtype(boxes)
    with torch.no_grad():
        return extension().nms(boxes.to(dtype), scores.to(dtype), float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently per value of `idxs`; kept indices by decreasing score (torchvision.ops.batched_nms)."""
    _boxes_scores("batched_nms", boxes, scores)
    _tensor("batched_nms", "idxs", idxs, 1, "[N] int64")
    if idxs.shape[0] != boxes.shape[0]:
        raise ValueError(f"batched_nms: `idxs` must have one entry per box: {boxes.shape[0]} boxes, {idxs.shape[0]} idxs")
    if idxs.is_floating_point() or idxs.dtype == torch.bool:
        raise TypeError(f"batched_nms: `idxs` must be an integer tensor, got dtype {idxs.dtype}")
    dtype = _kernel_dtype(boxes)
    with torch.no_grad():
        return extension().batched_nms(boxes.to(dtype), scores.to(dtype), idxs.long(), float(iou_threshold))


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS; dets [K,5] (x1,y1,x2,y2,rescored score) in selection order and original indices [K].

    Same definition as the reference (initial scores below min_score are dropped; ties pick the lowest index);
    the outputs are not differentiable.
    """
    _boxes_scores("soft_nms", boxes, scores)
    _choice("soft_nms", "method", method, tuple(SOFT_NMS_METHODS))
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"soft_nms: `sigma` must be > 0 for the gaussian method, got {sigma}")
    if not math.isfinite(min_score):
        raise ValueError(f"soft_nms: `min_score` must be a finite number, got {min_score}")
    dtype = _kernel_dtype(boxes)
    with torch.no_grad():
        dets, inds = extension().soft_nms(
            boxes.to(dtype), scores.to(dtype), float(iou_threshold), float(sigma), float(min_score), SOFT_NMS_METHODS[method]
        )
    return dets.to(boxes.dtype), inds


# ---------------------------------------------------------------------------------------------------------------
# RoI pooling family


class _RoIAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, input: Tensor, rois: Tensor, size: tuple[int, int], scale: float,
                sampling: int, aligned: bool, use_max: bool) -> Tensor:
        ctx.save_for_backward(input, rois)
        ctx.params = (scale, size[0], size[1], sampling, aligned, use_max)
        return extension().roi_align_forward(input, rois, scale, size[0], size[1], sampling, aligned, use_max)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        input, rois = ctx.saved_tensors
        grad_input = extension().roi_align_backward(grad.contiguous(), input, rois, *ctx.params)
        return grad_input, None, None, None, None, None, None


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
    pool_mode: str = "avg",
) -> Tensor:
    """RoIAlign of rois [K,5] into [K,C,oh,ow]; "avg" equals torchvision.ops.roi_align, "max" maxes the samples."""
    _input_rois("roi_align", input, rois)
    size = _pair("roi_align", "output_size", output_size)
    _choice("roi_align", "pool_mode", pool_mode, POOL_MODES)
    dtype = _kernel_dtype(input)
    out = _RoIAlign.apply(input.to(dtype), rois.to(dtype), size, float(spatial_scale), int(sampling_ratio),
                          bool(aligned), pool_mode == "max")
    return out.to(input.dtype)


class _RoIPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, input: Tensor, rois: Tensor, size: tuple[int, int], scale: float) -> Tensor:
        output, argmax = extension().roi_pool_forward(input, rois, scale, size[0], size[1])
        ctx.save_for_backward(argmax, rois)
        ctx.input_shape = tuple(input.shape)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        argmax, rois = ctx.saved_tensors
        grad_input = extension().roi_pool_backward(grad.contiguous(), argmax, rois, *ctx.input_shape)
        return grad_input, None, None, None


def roi_pool(input: Tensor, rois: Tensor, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> Tensor:
    """RoIPool (torchvision.ops.roi_pool semantics): max over the integer-quantized bins of each RoI."""
    _input_rois("roi_pool", input, rois)
    size = _pair("roi_pool", "output_size", output_size)
    dtype = _kernel_dtype(input)
    return _RoIPool.apply(input.to(dtype), rois.to(dtype), size, float(spatial_scale)).to(input.dtype)


class _DeformRoIPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, input: Tensor, rois: Tensor, offset: Tensor | None, size: tuple[int, int],
                scale: float, sampling: int, gamma: float, aligned: bool) -> Tensor:
        use_offset = offset is not None
        off = offset if use_offset else input.new_empty(0)
        ctx.save_for_backward(input, rois, off)
        ctx.params = (use_offset, scale, size[0], size[1], sampling, gamma, aligned)
        return extension().deform_roi_pool_forward(input, rois, off, *ctx.params)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        input, rois, off = ctx.saved_tensors
        grad_input, grad_offset = extension().deform_roi_pool_backward(grad.contiguous(), input, rois, off, *ctx.params)
        return grad_input, None, grad_offset, None, None, None, None, None


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
    """RoIAlign(aligned, avg) with bin (i, j) shifted by gamma * offset[k, :, i, j] * (roi_w, roi_h)."""
    _input_rois("deform_roi_pool", input, rois)
    size = _pair("deform_roi_pool", "output_size", output_size)
    if offset is not None:
        _tensor("deform_roi_pool", "offset", offset, 4, "[K, 2, oh, ow]")
        expected = (rois.shape[0], 2, size[0], size[1])
        if tuple(offset.shape) != expected:
            raise ValueError(f"deform_roi_pool: `offset` must have shape [K, 2, oh, ow] = {expected}, got {tuple(offset.shape)}")
        if offset.dtype != input.dtype or offset.device != input.device:
            raise TypeError(f"deform_roi_pool: `offset` must match `input` dtype/device ({input.dtype}, {input.device})")
    dtype = _kernel_dtype(input)
    off = offset.to(dtype) if offset is not None else None
    out = _DeformRoIPool.apply(input.to(dtype), rois.to(dtype), off, size, float(spatial_scale), int(sampling_ratio),
                               float(gamma), bool(aligned))
    return out.to(input.dtype)


# ---------------------------------------------------------------------------------------------------------------
# deformable convolution


class _DeformConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, input: Tensor, offset: Tensor, weight: Tensor, mask: Tensor | None,
                conv: tuple[int, int, int, int, int, int]) -> Tensor:
        use_mask = mask is not None
        m = mask if use_mask else input.new_empty(0)
        ctx.save_for_backward(input, offset, weight, m)
        ctx.params = (use_mask, *conv)
        return extension().deform_conv_forward(input, weight, offset, m, *ctx.params)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        input, offset, weight, m = ctx.saved_tensors
        grad_input, grad_offset, grad_mask, grad_weight = extension().deform_conv_backward(
            grad.contiguous(), input, weight, offset, m, *ctx.params
        )
        return grad_input, grad_offset, grad_weight, grad_mask, None


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable convolution v1 (v2 when `mask` is given) with torchvision.ops.deform_conv2d semantics."""
    op = "deform_conv2d"
    _tensor(op, "input", input, 4, "[N, C_in, H, W]")
    _tensor(op, "offset", offset, 4, "[N, 2*offset_groups*kh*kw, oh, ow]")
    _tensor(op, "weight", weight, 4, "[C_out, C_in/groups, kh, kw]")
    _floating(op, "input", input)
    sh, sw = _pair(op, "stride", stride)
    ph, pw = _pair(op, "padding", padding, minimum=0)
    dh, dw = _pair(op, "dilation", dilation)
    n, c_in, height, width = input.shape
    kh, kw = weight.shape[2], weight.shape[3]
    if weight.shape[1] == 0 or c_in % weight.shape[1] != 0 or weight.shape[0] % (c_in // weight.shape[1]) != 0:
        raise ValueError(f"{op}: input channels {c_in} and weight shape {tuple(weight.shape)} do not form valid groups")
    taps = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * taps) != 0 or c_in % (offset.shape[1] // (2 * taps)) != 0:
        raise ValueError(f"{op}: `offset` channels must be 2*offset_groups*kh*kw with C_in divisible by offset_groups, "
                         f"got {offset.shape[1]}")
    out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if offset.shape[0] != n or tuple(offset.shape[2:]) != (out_h, out_w):
        raise ValueError(f"{op}: `offset` must have shape [N={n}, {offset.shape[1]}, oh={out_h}, ow={out_w}], "
                         f"got {tuple(offset.shape)}")
    if mask is not None:
        _tensor(op, "mask", mask, 4, "[N, offset_groups*kh*kw, oh, ow]")
        expected = (n, offset.shape[1] // 2, out_h, out_w)
        if tuple(mask.shape) != expected:
            raise ValueError(f"{op}: `mask` must have shape {expected}, got {tuple(mask.shape)}")
    if bias is not None:
        _tensor(op, "bias", bias, 1, "[C_out]")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{op}: `bias` must have C_out={weight.shape[0]} entries, got {bias.shape[0]}")
    dtype = _kernel_dtype(input)
    out = _DeformConv.apply(
        input.to(dtype), offset.to(dtype), weight.to(dtype), mask.to(dtype) if mask is not None else None,
        (sh, sw, ph, pw, dh, dw),
    ).to(input.dtype)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1).to(out.dtype)
    return out


# ---------------------------------------------------------------------------------------------------------------
# multi-scale deformable attention


class _MSDA(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, value: Tensor, shapes: Tensor, starts: Tensor, loc: Tensor, attn: Tensor) -> Tensor:
        ctx.save_for_backward(value, shapes, starts, loc, attn)
        return extension().msda_forward(value, shapes, starts, loc, attn)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        value, shapes, starts, loc, attn = ctx.saved_tensors
        grad_value, grad_loc, grad_attn = extension().msda_backward(grad.contiguous(), value, shapes, starts, loc, attn)
        return grad_value, None, None, grad_loc, grad_attn


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Deformable DETR attention: attention-weighted bilinear samples (grid_sample, zero padding); [B, Q, heads*Cv]."""
    op = "multi_scale_deformable_attention"
    _tensor(op, "value", value, 4, "[B, S, heads, Cv]")
    _tensor(op, "spatial_shapes", spatial_shapes, 2, "[L, 2] (H, W)")
    _tensor(op, "level_start_index", level_start_index, 1, "[L]")
    _tensor(op, "sampling_locations", sampling_locations, 6, "[B, Q, heads, L, P, 2]")
    _tensor(op, "attention_weights", attention_weights, 5, "[B, Q, heads, L, P]")
    _floating(op, "value", value)
    batch, num_keys, heads, _ = value.shape
    levels = spatial_shapes.shape[0]
    if spatial_shapes.shape[1] != 2 or spatial_shapes.is_floating_point():
        raise ValueError(f"{op}: `spatial_shapes` must be an integer [L, 2] (H, W) tensor, got {tuple(spatial_shapes.shape)}")
    loc_shape = tuple(sampling_locations.shape)
    if loc_shape[0] != batch or loc_shape[2] != heads or loc_shape[3] != levels or loc_shape[5] != 2:
        raise ValueError(f"{op}: `sampling_locations` must have shape [B={batch}, Q, heads={heads}, L={levels}, P, 2], "
                         f"got {loc_shape}")
    if tuple(attention_weights.shape) != loc_shape[:5]:
        raise ValueError(f"{op}: `attention_weights` must have shape {loc_shape[:5]}, got {tuple(attention_weights.shape)}")
    if level_start_index.shape[0] != levels:
        raise ValueError(f"{op}: `level_start_index` must have L={levels} entries, got {level_start_index.shape[0]}")
    # The kernel reads shapes/starts on the host (CPU) or device (CUDA): keep them with `value`.
    shapes = spatial_shapes.to(device=value.device, dtype=torch.long)
    starts = level_start_index.to(device=value.device, dtype=torch.long)
    if value.device.type == "cpu" and int((shapes[:, 0] * shapes[:, 1]).sum()) != num_keys:
        raise ValueError(f"{op}: `value` has S={num_keys} rows but spatial_shapes {shapes.tolist()} cover a different number")
    dtype = _kernel_dtype(value)
    out = _MSDA.apply(value.to(dtype), shapes, starts, sampling_locations.to(dtype), attention_weights.to(dtype))
    return out.to(value.dtype)


# ---------------------------------------------------------------------------------------------------------------
# corner pooling, focal loss, CARAFE


class _CornerPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, input: Tensor, mode: int) -> Tensor:
        ctx.save_for_backward(input)
        ctx.mode = mode
        return extension().corner_pool_forward(input, mode)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        (input,) = ctx.saved_tensors
        return extension().corner_pool_backward(grad.contiguous(), input, ctx.mode), None


def corner_pool(input: Tensor, mode: str) -> Tensor:
    """top: out[..., i, j] = max_{k >= i} in[..., k, j]; bottom: k <= i; left: max_{k >= j} in[..., i, k]; right: k <= j."""
    _tensor("corner_pool", "input", input, 4, "[N, C, H, W]")
    _choice("corner_pool", "mode", mode, tuple(CORNER_POOL_MODES))
    _floating("corner_pool", "input", input)
    dtype = _kernel_dtype(input)
    return _CornerPool.apply(input.to(dtype), CORNER_POOL_MODES[mode]).to(input.dtype)


class _SigmoidFocalLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, pred: Tensor, target: Tensor, gamma: float, alpha: float) -> Tensor:
        ctx.save_for_backward(pred, target)
        ctx.params = (gamma, alpha)
        return extension().focal_loss_forward(pred, target, gamma, alpha)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        pred, target = ctx.saved_tensors
        return extension().focal_loss_backward(grad.contiguous(), pred, target, *ctx.params), None, None, None


def sigmoid_focal_loss(
    pred: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Fused focal loss of logits [N, C] against labels [N] in [0, C] (C = background); alpha < 0 disables alpha.

    reduction "none" gives [N, C]; "mean" averages over all N*C elements (0 for empty input); "sum".
    """
    op = "sigmoid_focal_loss"
    pred, target, weight = check_focal_loss_args(op, pred, target, weight, reduction, REDUCTIONS)
    dtype = _kernel_dtype(pred)
    loss = _SigmoidFocalLoss.apply(pred.to(dtype), target.long(), float(gamma), float(alpha)).to(pred.dtype)
    if weight is not None:
        loss = loss * weight[:, None].to(loss.dtype)
    if reduction == "none":
        return loss
    if reduction == "sum" or loss.numel() == 0:
        return loss.sum()
    return loss.mean()


class _Carafe(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, features: Tensor, masks: Tensor, kernel_size: int, group_size: int,
                scale_factor: int) -> Tensor:
        ctx.save_for_backward(features, masks)
        ctx.params = (kernel_size, group_size, scale_factor)
        return extension().carafe_forward(features, masks, kernel_size, group_size, scale_factor)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        features, masks = ctx.saved_tensors
        grad_features, grad_masks = extension().carafe_backward(grad.contiguous(), features, masks, *ctx.params)
        return grad_features, grad_masks, None, None, None


def carafe(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """CARAFE: out (y, x) = sum of the k x k zero-padded neighbourhood of source (y//s, x//s) weighted by the masks."""
    op = "carafe"
    _tensor(op, "features", features, 4, "[N, C, H, W]")
    _tensor(op, "masks", masks, 4, "[N, G*k*k, H*s, W*s]")
    _floating(op, "features", features)
    for name, val in (("kernel_size", kernel_size), ("group_size", group_size), ("scale_factor", scale_factor)):
        if not isinstance(val, int) or isinstance(val, bool) or val < 1:
            raise ValueError(f"{op}: `{name}` must be a positive int, got {val!r}")
    if kernel_size % 2 != 1:
        raise ValueError(f"{op}: `kernel_size` must be odd so the neighbourhood is centred, got {kernel_size}")
    n, channels, height, width = features.shape
    if channels % group_size != 0:
        raise ValueError(f"{op}: feature channels {channels} must be divisible by group_size {group_size}")
    expected = (n, group_size * kernel_size * kernel_size, height * scale_factor, width * scale_factor)
    if tuple(masks.shape) != expected:
        raise ValueError(f"{op}: `masks` must have shape [N, G*k*k, H*s, W*s] = {expected}, got {tuple(masks.shape)}")
    dtype = _kernel_dtype(features)
    out = _Carafe.apply(features.to(dtype), masks.to(dtype), kernel_size, group_size, scale_factor)
    return out.to(features.dtype)


# ---------------------------------------------------------------------------------------------------------------
# registration

OPS: dict[str, Callable[..., Any]] = {
    "nms": nms,
    "batched_nms": batched_nms,
    "soft_nms": soft_nms,
    "roi_align": roi_align,
    "roi_pool": roi_pool,
    "deform_conv2d": deform_conv2d,
    "deform_roi_pool": deform_roi_pool,
    "multi_scale_deformable_attention": multi_scale_deformable_attention,
    "corner_pool": corner_pool,
    "sigmoid_focal_loss": sigmoid_focal_loss,
    "carafe": carafe,
}


def device_table() -> dict[str, frozenset[str]]:
    """Device types served per op: "cpu" always, "cuda" for ops whose CUDA kernels are compiled in."""
    cuda_ops = set(extension().cuda_ops())
    return {op: frozenset({"cpu", "cuda"} if op in cuda_ops else {"cpu"}) for op in OP_NAMES}


def make_backend() -> Any:
    """Entry point of group `detcore.ops`: the det-ops-cuda OpsBackend (imports the compiled extension)."""
    from detcore.ops.backends import OpsBackend

    return OpsBackend(name=BACKEND_NAME, ops=dict(OPS), devices=device_table(), priority=100)
