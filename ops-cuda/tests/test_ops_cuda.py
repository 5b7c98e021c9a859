"""CUDA kernels of det-ops-cuda against detcore.ops.reference (run on the CPU); skipped without a GPU."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_close, random_boxes, random_rois

from det_ops_cuda import backend as B
from detcore.ops import reference as R

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(not bool(B.extension().with_cuda), reason="det-ops-cuda was built without CUDA kernels"),
]
CUDA = torch.device("cuda")


def cuda_vs_reference(fn_ours, fn_ref, inputs: list, atol: float = 1e-8, rtol: float = 1e-6) -> None:
    """ours(inputs on CUDA) equals reference(inputs on CPU), forward and gradients (float64 leaves)."""
    cpu_in = [t.detach().clone().requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in inputs]
    gpu_in = [t.detach().to(CUDA).requires_grad_(t.requires_grad) if isinstance(t, torch.Tensor) else t for t in inputs]
    out_ref, out_ours = fn_ref(*cpu_in), fn_ours(*gpu_in)
    assert out_ours.is_cuda
    assert_close(out_ours.cpu(), out_ref, atol=atol, rtol=rtol)
    seed = torch.randn_like(out_ref)
    wrt_ref = [t for t in cpu_in if isinstance(t, torch.Tensor) and t.requires_grad]
    wrt_ours = [t for t in gpu_in if isinstance(t, torch.Tensor) and t.requires_grad]
    if not wrt_ref:
        return
    g_ref = torch.autograd.grad((out_ref * seed).sum(), wrt_ref)
    g_ours = torch.autograd.grad((out_ours * seed.to(CUDA)).sum(), wrt_ours)
    for a, b in zip(g_ours, g_ref):
        assert_close(a.cpu(), b, atol=atol, rtol=rtol)


def test_backend_serves_cuda() -> None:
    backend = B.make_backend()
    assert all(backend.devices[op] == frozenset({"cpu", "cuda"}) for op in B.OP_NAMES)


@pytest.mark.parametrize("n", [0, 1, 100, 1000])
def test_nms_family(gen, n: int) -> None:
    boxes, scores = random_boxes(n, generator=gen), torch.rand(n, generator=gen)
    idxs = torch.randint(0, 5, (n,), generator=gen)
    assert torch.equal(B.nms(boxes.to(CUDA), scores.to(CUDA), 0.5).cpu(), R.nms(boxes, scores, 0.5))
    assert torch.equal(
        B.batched_nms(boxes.to(CUDA), scores.to(CUDA), idxs.to(CUDA), 0.5).cpu(), R.batched_nms(boxes, scores, idxs, 0.5)
    )
    for method in ("linear", "gaussian", "naive"):
        d_ours, i_ours = B.soft_nms(boxes[:200].to(CUDA), scores[:200].to(CUDA), method=method)
        d_ref, i_ref = R.soft_nms(boxes[:200], scores[:200], method=method)
        assert torch.equal(i_ours.cpu(), i_ref)
        assert_close(d_ours.cpu(), d_ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("pool_mode", ["avg", "max"])
def test_roi_align(gen, aligned: bool, pool_mode: str) -> None:
    x = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(12, 2, 22, gen, torch.float64)
    for sr in (0, 2):
        cuda_vs_reference(lambda t, r: B.roi_align(t, r, 3, 0.5, sr, aligned, pool_mode),
                          lambda t, r: R.roi_align(t, r, 3, 0.5, sr, aligned, pool_mode), [x, rois])


def test_roi_pool_and_deform_roi_pool(gen) -> None:
    x = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    rois = random_rois(12, 2, 22, gen, torch.float64)
    offset = torch.randn(12, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    cuda_vs_reference(lambda t, r: B.roi_pool(t, r, 3, 0.5), lambda t, r: R.roi_pool(t, r, 3, 0.5), [x, rois])
    for aligned in (True, False):
        cuda_vs_reference(lambda t, r, o: B.deform_roi_pool(t, r, o, 3, 0.5, 2, 0.1, aligned),
                          lambda t, r, o: R.deform_roi_pool(t, r, o, 3, 0.5, 2, 0.1, aligned), [x, rois, offset])


@pytest.mark.parametrize("modulated", [False, True])
def test_deform_conv2d(gen, modulated: bool) -> None:
    d = torch.float64
    x = torch.randn(2, 4, 7, 8, generator=gen, dtype=d, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, generator=gen, dtype=d, requires_grad=True)
    offset = (torch.randn(2, 36, 4, 4, generator=gen, dtype=d) * 2).requires_grad_()
    mask = torch.rand(2, 18, 4, 4, generator=gen, dtype=d, requires_grad=True) if modulated else None
    cuda_vs_reference(lambda a, o, ww, m: B.deform_conv2d(a, o, ww, None, 2, 1, 1, m),
                      lambda a, o, ww, m: R.deform_conv2d(a, o, ww, None, 2, 1, 1, m), [x, offset, w, mask])


def test_msda(gen) -> None:
    d = torch.float64
    shapes = torch.tensor([[6, 7], [3, 4]])
    starts = torch.tensor([0, 42])
    value = torch.randn(2, 54, 2, 4, generator=gen, dtype=d, requires_grad=True)
    loc = (torch.rand(2, 5, 2, 2, 3, 2, generator=gen, dtype=d) * 1.2 - 0.1).requires_grad_()
    attn = torch.rand(2, 5, 2, 2, 3, generator=gen, dtype=d, requires_grad=True)
    cuda_vs_reference(lambda v, s, st, l, a: B.multi_scale_deformable_attention(v, s, st, l, a),
                      lambda v, s, st, l, a: R.multi_scale_deformable_attention(v, s, st, l, a),
                      [value, shapes, starts, loc, attn])


@pytest.mark.parametrize("mode", ["top", "bottom", "left", "right"])
def test_corner_pool(gen, mode: str) -> None:
    x = torch.randn(2, 3, 9, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    cuda_vs_reference(lambda t: B.corner_pool(t, mode), lambda t: R.corner_pool(t, mode), [x], atol=0, rtol=0)


def test_focal_loss_and_carafe(gen) -> None:
    d = torch.float64
    pred = (torch.randn(20, 6, generator=gen, dtype=d) * 3).requires_grad_()
    target = torch.randint(0, 7, (20,), generator=gen)
    cuda_vs_reference(lambda p, t: B.sigmoid_focal_loss(p, t, reduction="none"),
                      lambda p, t: R.sigmoid_focal_loss(p, t, reduction="none"), [pred, target])
    f = torch.randn(2, 4, 5, 6, generator=gen, dtype=d, requires_grad=True)
    m = torch.rand(2, 2 * 9, 10, 12, generator=gen, dtype=d, requires_grad=True)
    cuda_vs_reference(lambda a, b: B.carafe(a, b, 3, 2, 2), lambda a, b: R.carafe(a, b, 3, 2, 2), [f, m])
