"""Deformable convolution reference against F.conv2d (zero offset) and a naive sampling loop."""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from detcore import ops
from detcore.ops import reference


def naive_deform_conv(x, offset, weight, bias, stride, padding, dilation, mask, bilinear_zero):
    n, c_in, _, _ = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    groups = c_in // c_per_group
    offset_groups = offset.shape[1] // (2 * kh * kw)
    out_h, out_w = offset.shape[2:]
    out = torch.zeros(n, c_out, out_h, out_w, dtype=x.dtype)
    for b in range(n):
        for oy in range(out_h):
            for ox in range(out_w):
                # columns[c, tap]: sampled input value of channel c for each kernel tap
                columns = torch.zeros(c_in, kh * kw, dtype=x.dtype)
                for g in range(offset_groups):
                    chans = slice(g * c_in // offset_groups, (g + 1) * c_in // offset_groups)
                    for ky in range(kh):
                        for kx in range(kw):
                            tap = ky * kw + kx
                            dy = offset[b, 2 * (g * kh * kw + tap), oy, ox].item()
                            dx = offset[b, 2 * (g * kh * kw + tap) + 1, oy, ox].item()
                            y = oy * stride - padding + ky * dilation + dy
                            xx = ox * stride - padding + kx * dilation + dx
                            value = bilinear_zero(x[b, chans], y, xx)
                            if mask is not None:
                                value = value * mask[b, g * kh * kw + tap, oy, ox]
                            columns[chans, tap] = value
                for co in range(c_out):
                    g = co // (c_out // groups)
                    cols = columns[g * c_per_group : (g + 1) * c_per_group]
                    out[b, co, oy, ox] = (cols * weight[co].reshape(c_per_group, -1)).sum()
                    if bias is not None:
                        out[b, co, oy, ox] += bias[co]
    return out


def test_zero_offset_is_conv2d():
    x = torch.randn(2, 4, 7, 6)
    weight = torch.randn(6, 2, 3, 3)
    bias = torch.randn(6)
    offset = torch.zeros(2, 2 * 9, 4, 3)
    got = ops.deform_conv2d(x, offset, weight, bias, stride=2, padding=1, dilation=1)
    torch.testing.assert_close(got, F.conv2d(x, weight, bias, stride=2, padding=1, groups=2), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("modulated", [False, True])
def test_matches_naive_loop(modulated, bilinear_zero):
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    weight = torch.randn(4, 2, 3, 2, dtype=torch.float64)  # 2 weight groups, 3x2 kernel
    bias = torch.randn(4, dtype=torch.float64)
    stride, padding, dilation = 1, 1, 2
    out_h, out_w = (5 + 2 - 2 * 2 - 1) // 1 + 1, (6 + 2 - 2 * 1 - 1) // 1 + 1
    offset = torch.randn(1, 2 * 2 * 6, out_h, out_w, dtype=torch.float64) * 1.5  # 2 offset groups
    mask = torch.rand(1, 2 * 6, out_h, out_w, dtype=torch.float64) if modulated else None
    got = ops.deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)
    expected = naive_deform_conv(x, offset, weight, bias, stride, padding, dilation, mask, bilinear_zero)
    torch.testing.assert_close(got, expected)


def test_gradcheck():
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    offset = (torch.rand(1, 8, 3, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    mask = torch.rand(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, o, w, m: reference.deform_conv2d(a, o, w, None, 1, 0, 1, m), (x, offset, weight, mask)
    )


def test_bad_inputs_name_the_argument():
    x, w = torch.randn(1, 4, 5, 5), torch.randn(4, 4, 3, 3)
    with pytest.raises(ValueError, match="offset"):
        ops.deform_conv2d(x, torch.zeros(1, 17, 3, 3), w)
    with pytest.raises(ValueError, match="offset"):
        ops.deform_conv2d(x, torch.zeros(1, 18, 4, 4), w)
    with pytest.raises(ValueError, match="mask"):
        ops.deform_conv2d(x, torch.zeros(1, 18, 3, 3), w, mask=torch.ones(1, 8, 3, 3))
    with pytest.raises(ValueError, match="weight"):
        ops.deform_conv2d(x, torch.zeros(1, 18, 3, 3), torch.randn(4, 3, 3, 3))


# (N, C_in, H, W, C_out, kernel (kh, kw), stride, padding, dilation, weight groups, offset groups, modulated)
TORCHVISION_CASES = [
    (2, 8, 9, 11, 6, (3, 3), 1, 1, 1, 1, 1, False),
    (2, 8, 9, 11, 6, (3, 3), 2, 1, 1, 2, 2, True),
    (1, 12, 10, 7, 6, (3, 2), 2, 2, 2, 3, 4, True),
    (2, 6, 1, 7, 4, (1, 3), (1, 2), (0, 1), 1, 1, 3, False),
]


@pytest.mark.parametrize("case", TORCHVISION_CASES)
def test_cpu_sampling_matches_torchvision_with_gradients(case):
    """The CPU path (grid_sample + matmul) gives torchvision's outputs and gradients of every argument."""
    n, c_in, h, w, c_out, (kh, kw), stride, padding, dilation, groups, offset_groups, modulated = case
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    out_h = (h + 2 * ph - dilation * (kh - 1) - 1) // sh + 1
    out_w = (w + 2 * pw - dilation * (kw - 1) - 1) // sw + 1
    x = torch.randn(n, c_in, h, w, requires_grad=True)
    weight = torch.randn(c_out, c_in // groups, kh, kw, requires_grad=True)
    bias = torch.randn(c_out, requires_grad=True)
    offset = (torch.randn(n, 2 * offset_groups * kh * kw, out_h, out_w) * 2).requires_grad_()
    mask = torch.rand(n, offset_groups * kh * kw, out_h, out_w, requires_grad=True) if modulated else None
    inputs = [t for t in (x, offset, weight, bias, mask) if t is not None]
    got = ops.deform_conv2d(x, offset, weight, bias, stride, padding, dilation, mask)
    expected = torchvision.ops.deform_conv2d(
        x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask
    )
    upstream = torch.randn_like(expected)
    grads = torch.autograd.grad(got, inputs, upstream)
    expected_grads = torch.autograd.grad(expected, inputs, upstream)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    for name, g, e in zip(("input", "offset", "weight", "bias", "mask"), grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4, msg=lambda m, name=name: f"grad of {name}: {m}")


def test_tracing_keeps_torchvision_op():
    """Traces (ONNX export) record torchvision's deform_conv2d, which has an ONNX symbolic."""
    weight, offset = torch.randn(4, 4, 3, 3), torch.randn(1, 18, 5, 5)
    traced = torch.jit.trace(lambda x: ops.deform_conv2d(x, offset, weight, padding=1), torch.randn(1, 4, 5, 5))
    assert "torchvision::deform_conv2d" in str(traced.graph)
    assert "grid_sampler" not in str(traced.graph)
