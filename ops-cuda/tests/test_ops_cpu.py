"""Compiled CPU kernels of det-ops-cuda against detcore.ops.reference: forward, gradients and edge cases."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import assert_close, random_boxes, random_rois
from torch.autograd import gradcheck as _gradcheck

from det_ops_cuda import backend as B
from detcore.ops import reference as R


def gradcheck(fn, inputs, **kwargs) -> bool:
    """torch gradcheck in fast mode (random projections): full gradients are compared to the reference by parity()."""
    return _gradcheck(fn, inputs, **kwargs)


def grads(fn, inputs: list[torch.Tensor], seed_grad: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Gradients of sum(fn(*inputs) * seed) w.r.t. the inputs that require grad."""
    out = fn(*inputs)
    seed = seed_grad if seed_grad is not None else torch.ones_like(out)
    wrt = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    return list(torch.autograd.grad((out * seed).sum(), wrt))


def parity(fn_ours, fn_ref, inputs, atol=1e-8, rtol=1e-6) -> None:
    """Forward and gradients (float64) of ours equal the reference's."""
    out_ours, out_ref = fn_ours(*inputs), fn_ref(*inputs)
    assert_close(out_ours, out_ref, atol=atol, rtol=rtol)
    seed = torch.randn_like(out_ref)
    for g_ours, g_ref in zip(grads(fn_ours, inputs, seed), grads(fn_ref, inputs, seed)):
        assert_close(g_ours, g_ref, atol=atol, rtol=rtol)


# ----------------------------------------------------------------------------------------------- registration


def test_backend_registered_for_every_op_on_cpu() -> None:
    import detcore.ops as ops

    ops.reload_backends()
    for op in B.OP_NAMES:
        assert ops.op_backend(op, "cpu") == "det-ops-cuda", op
    backend = B.make_backend()
    assert set(backend.ops) == set(B.OP_NAMES)
    assert all("cpu" in backend.devices[op] for op in B.OP_NAMES)
    cuda_ops = set(B.extension().cuda_ops())
    assert cuda_ops in (set(), set(B.OP_NAMES))
    assert bool(B.extension().with_cuda) == bool(cuda_ops)


def test_detcore_env_reports_the_compiled_backend_for_every_op() -> None:
    """What the user sees after `pip install ./ops-cuda`: `detcore env` names det-ops-cuda for every op."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "detcore.cli.main", "env", "--json"], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    info = json.loads(out)
    assert info["broken_op_backends"] == []
    served = {(row["op"], row["device"]): (row["backend"], row["status"]) for row in info["ops"]}
    devices = ["cpu", "cuda"] if B.extension().with_cuda else ["cpu"]
    for op in B.OP_NAMES:
        for device in devices:
            assert served[(op, device)] == ("det-ops-cuda", "ok"), (op, device)


def test_public_ops_dispatch_to_compiled_kernels(gen) -> None:
    import detcore.ops as ops

    boxes, scores = random_boxes(50, generator=gen), torch.rand(50, generator=gen)
    assert torch.equal(ops.nms(boxes, scores, 0.5), B.nms(boxes, scores, 0.5))


# ----------------------------------------------------------------------------------------------- NMS family


@pytest.mark.parametrize("n", [0, 1, 7, 300])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.7, 1.0])
def test_nms_matches_reference(gen, n: int, thr: float) -> None:
    boxes, scores = random_boxes(n, generator=gen), torch.rand(n, generator=gen)
    assert torch.equal(B.nms(boxes, scores, thr), R.nms(boxes, scores, thr))


def test_nms_edge_cases(gen) -> None:
    # degenerate (zero-area) boxes, identical boxes, large coordinates, float64
    boxes = random_boxes(200, size=1e5, generator=gen, dtype=torch.float64)
    boxes[:20, 2:] = boxes[:20, :2]
    boxes[20:40] = boxes[40]
    scores = torch.rand(200, generator=gen, dtype=torch.float64)
    for thr in (0.0, 0.5):
        assert torch.equal(B.nms(boxes, scores, thr), R.nms(boxes, scores, thr))
    empty = B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5)
    assert empty.dtype == torch.int64 and empty.shape == (0,)


@pytest.mark.parametrize("classes", [1, 3, 40])
def test_batched_nms_matches_reference(gen, classes: int) -> None:
    boxes, scores = random_boxes(400, generator=gen), torch.rand(400, generator=gen)
    idxs = torch.randint(0, classes, (400,), generator=gen) * 7 - 3
    assert torch.equal(B.batched_nms(boxes, scores, idxs, 0.5), R.batched_nms(boxes, scores, idxs, 0.5))
    assert B.batched_nms(boxes[:0], scores[:0], idxs[:0], 0.5).shape == (0,)


@pytest.mark.parametrize("method", ["linear", "gaussian", "naive"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_soft_nms_matches_reference(gen, method: str, dtype: torch.dtype) -> None:
    boxes, scores = random_boxes(120, size=60, generator=gen, dtype=dtype), torch.rand(120, generator=gen, dtype=dtype)
    scores[:5] = 1e-4  # below min_score from the start
    boxes[5:8, 2:] = boxes[5:8, :2]  # zero-area boxes (union 0 with each other)
    d_ours, i_ours = B.soft_nms(boxes, scores, 0.3, 0.5, 1e-3, method)
    d_ref, i_ref = R.soft_nms(boxes, scores, 0.3, 0.5, 1e-3, method)
    assert torch.equal(i_ours, i_ref)
    assert_close(d_ours, d_ref, atol=1e-6, rtol=1e-5)


def test_soft_nms_empty_and_all_low() -> None:
    dets, inds = B.soft_nms(torch.zeros(0, 4), torch.zeros(0))
    assert dets.shape == (0, 5) and inds.shape == (0,)
    dets, inds = B.soft_nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1e-5]))
    assert dets.shape == (0, 5) and inds.shape == (0,)
    with pytest.raises(ValueError):
        B.soft_nms(torch.zeros(0, 4), torch.zeros(0), method="bogus")


# ----------------------------------------------------------------------------------------------- RoI family


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 1, 3])
@pytest.mark.parametrize("pool_mode", ["avg", "max"])
def test_roi_align_forward(gen, aligned: bool, sampling_ratio: int, pool_mode: str) -> None:
    x = torch.randn(2, 5, 24, 30, generator=gen)
    rois = random_rois(40, 2, 60, gen)
    for scale in (0.5, 0.25):
        ours = B.roi_align(x, rois, (7, 5), scale, sampling_ratio, aligned, pool_mode)
        ref = R.roi_align(x, rois, (7, 5), scale, sampling_ratio, aligned, pool_mode)
        assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("pool_mode", ["avg", "max"])
def test_roi_align_gradients(gen, aligned: bool, pool_mode: str) -> None:
    x = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(6, 2, 22, gen, torch.float64)
    fn_ours = lambda x: B.roi_align(x, rois, 3, 0.5, 2, aligned, pool_mode)  # noqa: E731
    fn_ref = lambda x: R.roi_align(x, rois, 3, 0.5, 2, aligned, pool_mode)  # noqa: E731
    parity(fn_ours, fn_ref, [x])
    assert gradcheck(fn_ours, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_roi_align_edge_cases(gen) -> None:
    x = torch.randn(2, 4, 16, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [
            [0, 5, 5, 5, 5],  # empty
            [1, 9, 9, 3, 3],  # inverted
            [0, -50, -50, -20, -20],  # entirely outside (negative side)
            [1, 40, 40, 90, 70],  # entirely outside (positive side)
            [0, -10, -5, 40, 50],  # partly outside
            [1, 1e4, 1e4, 1e4 + 30, 1e4 + 30],  # large coordinates
            [0, 0, 0, 31.5, 31.5],  # whole map
        ],
        dtype=torch.float64,
    )
    for aligned in (True, False):
        for mode in ("avg", "max"):
            for sr in (0, 2):
                fn_ours = lambda x: B.roi_align(x, rois, (3, 4), 0.5, sr, aligned, mode)  # noqa: E731
                fn_ref = lambda x: R.roi_align(x, rois, (3, 4), 0.5, sr, aligned, mode)  # noqa: E731
                parity(fn_ours, fn_ref, [x])
    no_rois = B.roi_align(x, rois[:0], 7)
    assert no_rois.shape == (0, 4, 7, 7)
    no_rois.sum().backward()
    assert torch.count_nonzero(x.grad) == 0


def test_roi_pool(gen) -> None:
    x = torch.randn(2, 4, 20, 18, generator=gen)
    rois = random_rois(50, 2, 40, gen)
    rois[:3, 3:] = rois[:3, 1:3]  # single-pixel RoIs
    assert_close(B.roi_pool(x, rois, (4, 6), 0.5), R.roi_pool(x, rois, (4, 6), 0.5), atol=0, rtol=0)
    xd = torch.randn(2, 3, 8, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    rd = random_rois(5, 2, 16, gen, torch.float64)
    parity(lambda t: B.roi_pool(t, rd, 3, 0.5), lambda t: R.roi_pool(t, rd, 3, 0.5), [xd])
    assert gradcheck(lambda t: B.roi_pool(t, rd, 3, 0.5), (xd,), eps=1e-6, atol=1e-5, fast_mode=True)
    assert B.roi_pool(x, rois[:0], 7).shape == (0, 4, 7, 7)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_deform_roi_pool(gen, sampling_ratio: int, aligned: bool) -> None:
    x = torch.randn(2, 4, 12, 14, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(6, 2, 24, gen, torch.float64)
    offset = (torch.randn(6, 2, 3, 3, generator=gen, dtype=torch.float64) * 0.7).requires_grad_()
    fn_ours = lambda x, o: B.deform_roi_pool(x, rois, o, 3, 0.5, sampling_ratio, 0.1, aligned)  # noqa: E731
    fn_ref = lambda x, o: R.deform_roi_pool(x, rois, o, 3, 0.5, sampling_ratio, 0.1, aligned)  # noqa: E731
    parity(fn_ours, fn_ref, [x, offset])
    assert gradcheck(fn_ours, (x, offset), eps=1e-6, atol=1e-5, fast_mode=True)
    no_offset = B.deform_roi_pool(x, rois, None, 3, 0.5, sampling_ratio, aligned=aligned)
    assert_close(no_offset, R.roi_align(x, rois, 3, 0.5, sampling_ratio, aligned=aligned), atol=1e-10, rtol=1e-8)
    assert B.deform_roi_pool(x, rois[:0], offset[:0], 3).shape == (0, 4, 3, 3)


# ----------------------------------------------------------------------------------------------- deform conv


@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("groups,offset_groups", [(1, 1), (2, 2), (1, 2)])
def test_deform_conv2d(gen, modulated: bool, groups: int, offset_groups: int) -> None:
    d = torch.float64
    x = torch.randn(2, 4, 5, 6, generator=gen, dtype=d, requires_grad=True)
    weight = torch.randn(6, 4 // groups, 3, 3, generator=gen, dtype=d, requires_grad=True)
    bias = torch.randn(6, generator=gen, dtype=d, requires_grad=True)
    oh, ow = 3, 3  # stride 2, padding 1, dilation 1
    offset = (torch.randn(2, 2 * offset_groups * 9, oh, ow, generator=gen, dtype=d) * 2).requires_grad_()
    mask = torch.rand(2, offset_groups * 9, oh, ow, generator=gen, dtype=d).requires_grad_() if modulated else None
    inputs = [x, offset, weight, bias] + ([mask] if modulated else [])

    def fn(impl):
        return lambda x, o, w, b, m=None: impl.deform_conv2d(x, o, w, b, 2, 1, 1, m)

    parity(fn(B), fn(R), inputs)
    assert gradcheck(fn(B), tuple(inputs), eps=1e-6, atol=1e-5, fast_mode=True)


def test_deform_conv2d_edge_cases(gen) -> None:
    x = torch.randn(1, 3, 6, 6, generator=gen)
    weight = torch.randn(5, 3, 3, 3, generator=gen)
    zero = torch.zeros(1, 18, 6, 6)
    # zero offsets reduce to an ordinary convolution
    assert_close(B.deform_conv2d(x, zero, weight, padding=1), torch.nn.functional.conv2d(x, weight, padding=1))
    # offsets pushing every sample far outside the map give zeros
    far = torch.full((1, 18, 6, 6), 1e4)
    assert torch.count_nonzero(B.deform_conv2d(x, far, weight, padding=1)) == 0
    # empty batch, dilation and non-square kernel
    w2 = torch.randn(4, 3, 2, 3, generator=gen)
    off2 = torch.randn(2, 12, 4, 2, generator=gen)
    x2 = torch.randn(2, 3, 6, 7, generator=gen)
    assert_close(B.deform_conv2d(x2, off2, w2, None, (1, 2), 0, (2, 2)), R.deform_conv2d(x2, off2, w2, None, (1, 2), 0, (2, 2)))
    assert B.deform_conv2d(x2[:0], off2[:0], w2, None, (1, 2), 0, (2, 2)).shape == (0, 4, 4, 2)


# ----------------------------------------------------------------------------------------------- MSDA


def msda_inputs(gen, shapes: list[tuple[int, int]], batch=2, queries=5, heads=2, channels=3, points=2,
                dtype=torch.float64):
    spatial = torch.tensor(shapes, dtype=torch.int64)
    areas = spatial[:, 0] * spatial[:, 1]
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    value = torch.randn(batch, int(areas.sum()), heads, channels, generator=gen, dtype=dtype)
    loc = torch.rand(batch, queries, heads, len(shapes), points, 2, generator=gen, dtype=dtype) * 1.3 - 0.15
    attn = torch.rand(batch, queries, heads, len(shapes), points, generator=gen, dtype=dtype)
    return value, spatial, starts, loc, attn


def test_msda_forward_float32(gen) -> None:
    value, spatial, starts, loc, attn = msda_inputs(gen, [(16, 20), (8, 10), (4, 5), (2, 3)], 2, 50, 4, 8, 4, torch.float32)
    assert_close(
        B.multi_scale_deformable_attention(value, spatial, starts, loc, attn),
        R.multi_scale_deformable_attention(value, spatial, starts, loc, attn),
    )


def test_msda_gradients(gen) -> None:
    value, spatial, starts, loc, attn = msda_inputs(gen, [(4, 5), (2, 3)])
    for t in (value, loc, attn):
        t.requires_grad_()

    def fn(impl):
        return lambda v, l, a: impl.multi_scale_deformable_attention(v, spatial, starts, l, a)

    parity(fn(B), fn(R), [value, loc, attn])
    assert gradcheck(fn(B), (value, loc, attn), eps=1e-6, atol=1e-5, fast_mode=True)


def test_msda_edge_cases(gen) -> None:
    # an empty feature level contributes nothing: same as dropping it (the reference cannot sample it)
    value, spatial, starts, loc, attn = msda_inputs(gen, [(4, 5), (0, 3), (2, 3)])
    ours = B.multi_scale_deformable_attention(value, spatial, starts, loc, attn)
    keep = torch.tensor([0, 2])
    ref = R.multi_scale_deformable_attention(value, spatial[keep], starts[keep], loc[:, :, :, keep], attn[:, :, :, keep])
    assert_close(ours, ref, atol=1e-10, rtol=1e-8)
    # no queries
    v, s, st, loc, attn = msda_inputs(gen, [(3, 3)], queries=0)
    assert B.multi_scale_deformable_attention(v, s, st, loc, attn).shape == (2, 0, 6)
    # locations far outside the map sample zeros
    v, s, st, loc, attn = msda_inputs(gen, [(3, 3)])
    assert torch.count_nonzero(B.multi_scale_deformable_attention(v, s, st, loc + 5.0, attn)) == 0


# ----------------------------------------------------------------------------------------------- corner pool


@pytest.mark.parametrize("mode", ["top", "bottom", "left", "right"])
def test_corner_pool(gen, mode: str) -> None:
    x = torch.randn(2, 3, 9, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    # the forward is a running max (exact); gradients are sums, whose order may differ from the reference's
    assert_close(B.corner_pool(x, mode), R.corner_pool(x, mode), atol=0, rtol=0)
    parity(lambda t: B.corner_pool(t, mode), lambda t: R.corner_pool(t, mode), [x], atol=1e-12, rtol=0)
    assert gradcheck(lambda t: B.corner_pool(t, mode), (x,), eps=1e-6, atol=1e-5, fast_mode=True)
    # ties (ReLU-like plateaus) route gradients like torch.cummax; single rows/columns; empty input
    ties = torch.randn(1, 2, 6, 6, generator=gen).clamp(min=0).double().requires_grad_()
    parity(lambda t: B.corner_pool(t, mode), lambda t: R.corner_pool(t, mode), [ties], atol=1e-12, rtol=0)
    for shape in ((1, 1, 1, 5), (1, 1, 5, 1), (0, 2, 3, 3)):
        t = torch.randn(*shape, generator=gen)
        assert_close(B.corner_pool(t, mode), R.corner_pool(t, mode), atol=0, rtol=0)


# ----------------------------------------------------------------------------------------------- focal loss


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 1.5), (0.5, 0.0)])
def test_sigmoid_focal_loss(gen, reduction: str, alpha: float, gamma: float) -> None:
    pred = (torch.randn(20, 6, generator=gen, dtype=torch.float64) * 4).requires_grad_()
    target = torch.randint(0, 7, (20,), generator=gen)
    weight = torch.rand(20, generator=gen, dtype=torch.float64).requires_grad_()

    def fn(impl):
        return lambda p, w: impl.sigmoid_focal_loss(p, target, gamma, alpha, w, reduction)

    parity(fn(B), fn(R), [pred, weight])
    assert gradcheck(fn(B), (pred, weight), eps=1e-6, atol=1e-5, fast_mode=True)


def test_sigmoid_focal_loss_edge_cases(gen) -> None:
    empty = B.sigmoid_focal_loss(torch.zeros(0, 4, requires_grad=True), torch.zeros(0, dtype=torch.int64))
    assert empty.item() == 0.0
    # all background and extreme logits stay finite
    pred = torch.tensor([[-80.0, 80.0, 0.0]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([3])
    parity(lambda p: B.sigmoid_focal_loss(p, target, reduction="none"),
           lambda p: R.sigmoid_focal_loss(p, target, reduction="none"), [pred])
    assert_close(B.sigmoid_focal_loss(pred.float().detach(), target), R.sigmoid_focal_loss(pred.float().detach(), target))


# ----------------------------------------------------------------------------------------------- CARAFE


@pytest.mark.parametrize("kernel_size,group_size,scale_factor", [(5, 1, 2), (3, 2, 2), (1, 1, 1), (3, 4, 3)])
def test_carafe(gen, kernel_size: int, group_size: int, scale_factor: int) -> None:
    d = torch.float64
    features = torch.randn(1, 4, 3, 4, generator=gen, dtype=d, requires_grad=True)
    masks = torch.rand(1, group_size * kernel_size**2, 3 * scale_factor, 4 * scale_factor, generator=gen, dtype=d)
    masks.requires_grad_()

    def fn(impl):
        return lambda f, m: impl.carafe(f, m, kernel_size, group_size, scale_factor)

    parity(fn(B), fn(R), [features, masks])
    assert gradcheck(fn(B), (features, masks), eps=1e-6, atol=1e-5, fast_mode=True)
    f32 = torch.randn(1, 8, 10, 12, generator=gen)
    m32 = torch.rand(1, group_size * kernel_size**2, 10 * scale_factor, 12 * scale_factor, generator=gen)
    assert_close(B.carafe(f32, m32, kernel_size, group_size, scale_factor),
                 R.carafe(f32, m32, kernel_size, group_size, scale_factor))


# ----------------------------------------------------------------------------------------------- dtypes


def test_half_inputs_computed_in_float32(gen) -> None:
    x = torch.randn(1, 2, 8, 8, generator=gen)
    rois = random_rois(4, 1, 16, gen)
    out = B.roi_align(x.half(), rois.half(), 2)
    assert out.dtype == torch.float16
    assert_close(out.float(), R.roi_align(x.half().float(), rois.half().float(), 2), atol=2e-3, rtol=2e-3)


@pytest.mark.skipif(os.environ.get("DET_OPS_CUDA_EXPECT_CUDA") != "1",
                    reason="set DET_OPS_CUDA_EXPECT_CUDA=1 where the CUDA toolkit is installed (scripts/test does)")
def test_cuda_kernels_were_compiled_and_linked():
    """CI has a CUDA toolkit but no GPU: the CUDA kernels must still be built into the extension."""
    from det_ops_cuda.backend import OP_NAMES, extension

    ext = extension()
    assert ext.with_cuda
    assert sorted(ext.cuda_ops()) == sorted(OP_NAMES)
