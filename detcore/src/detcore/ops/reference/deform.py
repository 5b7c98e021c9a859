"""Reference deformable convolution (v1, and v2 when a modulation mask is given).

On CPU it samples the input with `grid_sample` and applies the weight with one batched matmul, which is several times
faster than torchvision's CPU kernel, forward and backward (`benchmarks/bench_deform_conv.py`); on other devices and
while tracing (ONNX export uses torchvision's symbolic) it calls torchvision.ops.deform_conv2d. Both have the same
semantics: Dai et al., "Deformable Convolutional Networks"; Zhu et al., "Deformable ConvNets v2".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor

from detcore.ops.checks import check_floating, check_same_device, check_tensor, pair


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
    """Deformable convolution with torchvision.ops.deform_conv2d semantics.

    offset [N, 2*G*kh*kw, oh, ow] holds (dy, dx) pairs per offset group G and kernel tap; weight groups are
    C_in / weight.shape[1]; mask [N, G*kh*kw, oh, ow] (modulated, DCNv2) multiplies each sampled value.
    """
    op = "deform_conv2d"
    input = check_tensor(op, "input", input, 4, "[N, C_in, H, W]")
    offset = check_tensor(op, "offset", offset, 4, "[N, 2*offset_groups*kh*kw, oh, ow]")
    weight = check_tensor(op, "weight", weight, 4, "[C_out, C_in/groups, kh, kw]")
    check_floating(op, "input", input)
    stride_hw = pair(op, "stride", stride)
    padding_hw = pair(op, "padding", padding, minimum=0)
    dilation_hw = pair(op, "dilation", dilation)
    if bias is not None:
        bias = check_tensor(op, "bias", bias, 1, "[C_out]")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{op}: `bias` must have C_out={weight.shape[0]} entries, got {bias.shape[0]}")
    if mask is not None:
        mask = check_tensor(op, "mask", mask, 4, "[N, offset_groups*kh*kw, oh, ow]")
    check_same_device(op, input=input, offset=offset, weight=weight, bias=bias, mask=mask)

    n, c_in, height, width = input.shape
    kh, kw = weight.shape[2], weight.shape[3]
    if weight.shape[1] == 0 or c_in % weight.shape[1] != 0:
        raise ValueError(f"{op}: input channels {c_in} must be a multiple of weight.shape[1]={weight.shape[1]}")
    groups = c_in // weight.shape[1]
    if weight.shape[0] % groups != 0:
        raise ValueError(f"{op}: output channels {weight.shape[0]} must be divisible by the {groups} weight groups")
    taps = kh * kw
    if offset.shape[1] == 0 or offset.shape[1] % (2 * taps) != 0:
        raise ValueError(
            f"{op}: `offset` channels must be 2*offset_groups*kh*kw (multiple of {2 * taps}), got {offset.shape[1]}"
        )
    offset_groups = offset.shape[1] // (2 * taps)
    if c_in % offset_groups != 0:
        raise ValueError(f"{op}: input channels {c_in} must be divisible by the {offset_groups} offset groups")
    out_h = (height + 2 * padding_hw[0] - dilation_hw[0] * (kh - 1) - 1) // stride_hw[0] + 1
    out_w = (width + 2 * padding_hw[1] - dilation_hw[1] * (kw - 1) - 1) // stride_hw[1] + 1
    if offset.shape[0] != n or tuple(offset.shape[2:]) != (out_h, out_w):
        raise ValueError(
            f"{op}: `offset` must have shape [N={n}, {offset.shape[1]}, oh={out_h}, ow={out_w}] for this input, "
            f"kernel, stride, padding and dilation; got {tuple(offset.shape)}"
        )
    if mask is not None and tuple(mask.shape) != (n, offset_groups * taps, out_h, out_w):
        raise ValueError(
            f"{op}: `mask` must have shape [N, offset_groups*kh*kw, oh, ow] = {(n, offset_groups * taps, out_h, out_w)}, "
            f"got {tuple(mask.shape)}"
        )
    if input.device.type != "cpu" or torch.jit.is_tracing() or torch.jit.is_scripting():
        return torchvision.ops.deform_conv2d(
            input, offset, weight, bias, stride=stride_hw, padding=padding_hw, dilation=dilation_hw, mask=mask
        )
    return deform_conv2d_by_sampling(input, offset, weight, bias, stride_hw, padding_hw, dilation_hw, mask)


def deform_conv2d_by_sampling(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    mask: Tensor | None,
) -> Tensor:
    """Deformable convolution as bilinear sampling plus a matmul (arguments already checked by `deform_conv2d`).

    Each kernel tap's position (output pixel * stride - padding + tap * dilation + its (dy, dx) offset) is read with
    `grid_sample` (bilinear, corners outside the map read 0: torchvision's sampling), times the mask, into columns
    [N, C_in * kh * kw, oh * ow] that the grouped weight multiplies.
    """
    n, c_in, height, width = input.shape
    c_out, c_per_group, kh, kw = weight.shape
    groups = c_in // c_per_group
    taps = kh * kw
    offset_groups = offset.shape[1] // (2 * taps)
    out_h, out_w = offset.shape[2], offset.shape[3]

    # absolute (y, x) pixel positions of every tap: [N, G, taps, oh, ow]
    dtype, device = input.dtype, input.device
    tap_y = torch.arange(kh, device=device, dtype=dtype).repeat_interleave(kw) * dilation[0]
    tap_x = torch.arange(kw, device=device, dtype=dtype).repeat(kh) * dilation[1]
    out_y = torch.arange(out_h, device=device, dtype=dtype) * stride[0] - padding[0]
    out_x = torch.arange(out_w, device=device, dtype=dtype) * stride[1] - padding[1]
    offset = offset.view(n, offset_groups, taps, 2, out_h, out_w)
    y = offset[:, :, :, 0] + (tap_y[:, None, None] + out_y[:, None])
    x = offset[:, :, :, 1] + (tap_x[:, None, None] + out_x)
    # grid_sample's align_corners=False coordinates: pixel p of a size-s axis is at (2p + 1) / s - 1
    grid = torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)
    grid = grid.view(n * offset_groups, taps * out_h, out_w, 2)
    sampled = F.grid_sample(
        input.reshape(n * offset_groups, c_in // offset_groups, height, width),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    ).view(n, offset_groups, c_in // offset_groups, taps, out_h, out_w)
    if mask is not None:
        sampled = sampled * mask.view(n, offset_groups, 1, taps, out_h, out_w)
    # channel c = g * (C_in / G) + c_g, so [N, G, C_in / G] flattens to C_in in the weight's order
    columns = sampled.reshape(n, groups, c_per_group * taps, out_h * out_w)
    out = torch.matmul(weight.reshape(groups, c_out // groups, c_per_group * taps), columns)
    out = out.reshape(n, c_out, out_h, out_w)
    if bias is not None:
        out = out + bias.view(1, c_out, 1, 1)
    return out
