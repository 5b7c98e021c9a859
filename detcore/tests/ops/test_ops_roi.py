"""RoIAlign (avg/max), RoIPool and deformable RoI pooling references against torchvision and naive loops."""

import math

import pytest
import torch
import torchvision

from detcore import ops
from detcore.ops import reference
from detcore.ops.reference.roi import _pool_bins


def bilinear_roi(image, y, x):
    """torchvision RoIAlign's scalar bilinear rule: 0 outside [-1, H] x [-1, W], otherwise clamp into the map."""
    _, height, width = image.shape
    if y < -1 or y > height or x < -1 or x > width:
        return torch.zeros(image.shape[0], dtype=image.dtype)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    return (
        (1 - ly) * (1 - lx) * image[:, y0, x0]
        + (1 - ly) * lx * image[:, y0, x1]
        + ly * (1 - lx) * image[:, y1, x0]
        + ly * lx * image[:, y1, x1]
    )


def naive_pool(input, rois, size, scale, sampling_ratio, aligned, mode, offset=None, gamma=0.0):
    oh, ow = size
    out = torch.zeros(rois.shape[0], input.shape[1], oh, ow, dtype=input.dtype)
    shift = 0.5 if aligned else 0.0
    for k, roi in enumerate(rois.tolist()):
        image = input[int(roi[0])]
        x1, y1 = roi[1] * scale - shift, roi[2] * scale - shift
        rw, rh = roi[3] * scale - shift - x1, roi[4] * scale - shift - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / ow, rh / oh
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / oh)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / ow)
        for i in range(oh):
            for j in range(ow):
                sx, sy = x1, y1
                if offset is not None:
                    sx += gamma * rw * offset[k, 0, i, j].item()
                    sy += gamma * rh * offset[k, 1, i, j].item()
                samples = [
                    bilinear_roi(image, sy + i * bh + (iy + 0.5) * bh / gh, sx + j * bw + (ix + 0.5) * bw / gw)
                    for iy in range(max(gh, 0))
                    for ix in range(max(gw, 0))
                ]
                if samples:
                    stacked = torch.stack(samples)
                    out[k, :, i, j] = stacked.mean(0) if mode == "avg" else stacked.max(0).values
    return out


def make_rois(k, n, size, dtype=torch.float64):
    xy = torch.rand(k, 2, dtype=dtype) * size * 0.8 - 2
    wh = torch.rand(k, 2, dtype=dtype) * size * 0.7 + 0.3
    batch = torch.randint(0, n, (k, 1)).to(dtype)
    return torch.cat([batch, xy, xy + wh], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_pool_bins_avg_equals_torchvision(aligned, sampling_ratio):
    """The shared sampler behind the max/deformable paths samples exactly where torchvision does."""
    x = torch.rand(2, 3, 12, 14, dtype=torch.float64)
    rois = make_rois(9, 2, 24)
    rois[0, 3:] = rois[0, 1:3]  # an empty RoI: no samples when aligned, a 1x1 RoI otherwise
    got = _pool_bins(x, rois, (3, 4), 0.5, sampling_ratio, aligned, "avg")
    expected = torchvision.ops.roi_align(x, rois, (3, 4), 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(got, expected)


def test_roi_align_avg_is_torchvision():
    x = torch.rand(2, 4, 10, 10)
    rois = make_rois(5, 2, 10, torch.float32)
    torch.testing.assert_close(
        ops.roi_align(x, rois, 2, 1.0, 0, True), torchvision.ops.roi_align(x, rois, 2, 1.0, 0, True)
    )


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_max_matches_naive_loop(aligned, sampling_ratio):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64)
    rois = make_rois(6, 2, 18)
    rois[0, 3:] = rois[0, 1:3]
    got = ops.roi_align(x, rois, (3, 2), 0.5, sampling_ratio, aligned, pool_mode="max")
    torch.testing.assert_close(got, naive_pool(x, rois, (3, 2), 0.5, sampling_ratio, aligned, "max"))


def test_roi_pool_matches_naive_loop():
    x = torch.randn(2, 3, 10, 12, dtype=torch.float64)
    rois = make_rois(5, 2, 20)
    got = ops.roi_pool(x, rois, (2, 3), 0.5)
    expected = torch.zeros_like(got)
    for k, roi in enumerate(rois.tolist()):
        sx, sy = round(roi[1] * 0.5), round(roi[2] * 0.5)
        rw, rh = max(round(roi[3] * 0.5) - sx + 1, 1), max(round(roi[4] * 0.5) - sy + 1, 1)
        for i in range(2):
            for j in range(3):
                h0 = min(max(math.floor(i * rh / 2) + sy, 0), 10)
                h1 = min(max(math.ceil((i + 1) * rh / 2) + sy, 0), 10)
                w0 = min(max(math.floor(j * rw / 3) + sx, 0), 12)
                w1 = min(max(math.ceil((j + 1) * rw / 3) + sx, 0), 12)
                if h1 > h0 and w1 > w0:
                    expected[k, :, i, j] = x[int(roi[0]), :, h0:h1, w0:w1].amax(dim=(1, 2))
    torch.testing.assert_close(got, expected)


def test_deform_roi_pool_zero_offset_is_roi_align():
    x = torch.rand(2, 3, 12, 12)
    rois = make_rois(7, 2, 24, torch.float32)
    # default aligned=True: mmcv's DeformRoIPool (half-pixel shift, no minimum RoI size)
    for aligned in (True, False):
        expected = torchvision.ops.roi_align(x, rois, 3, 0.5, 0, aligned=aligned)
        kwargs = {} if aligned else {"aligned": False}
        torch.testing.assert_close(ops.deform_roi_pool(x, rois, None, 3, 0.5, **kwargs), expected)
        torch.testing.assert_close(ops.deform_roi_pool(x, rois, torch.zeros(7, 2, 3, 3), 3, 0.5, **kwargs), expected)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_deform_roi_pool_matches_naive_loop(sampling_ratio, aligned):
    x = torch.randn(2, 3, 10, 10, dtype=torch.float64)
    rois = make_rois(5, 2, 20)
    offset = torch.randn(5, 2, 3, 2, dtype=torch.float64)
    got = ops.deform_roi_pool(x, rois, offset, (3, 2), 0.5, sampling_ratio, gamma=0.3, aligned=aligned)
    expected = naive_pool(x, rois, (3, 2), 0.5, sampling_ratio, aligned, "avg", offset, 0.3)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, ops.deform_roi_pool(x, rois, None, (3, 2), 0.5, sampling_ratio, aligned=aligned))


def test_gradcheck_max_and_deform():
    x = torch.rand(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.7, 1.1, 4.3, 4.9], [0, 2.2, 0.4, 5.1, 3.6]], dtype=torch.float64)
    offset = (torch.rand(2, 2, 2, 2, dtype=torch.float64) * 0.4 - 0.2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: reference.roi_align(t, rois, 2, 1.0, 2, True, "max"), (x,))
    assert torch.autograd.gradcheck(lambda t, o: reference.deform_roi_pool(t, rois, o, 2, 1.0, 2, 0.1), (x, offset))


def test_empty_rois():
    x = torch.rand(2, 3, 8, 8)
    rois = torch.zeros(0, 5)
    for out in (
        ops.roi_align(x, rois, (2, 3)),
        ops.roi_align(x, rois, (2, 3), pool_mode="max"),
        ops.roi_pool(x, rois, (2, 3)),
        ops.deform_roi_pool(x, rois, None, (2, 3)),
        ops.deform_roi_pool(x, rois, torch.zeros(0, 2, 2, 3), (2, 3)),
    ):
        assert out.shape == (0, 3, 2, 3) and out.dtype == torch.float32


def test_bad_inputs_name_the_argument():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="rois"):
        ops.roi_align(x, torch.zeros(2, 4), 2)
    with pytest.raises(ValueError, match="input"):
        ops.roi_align(torch.rand(3, 8, 8), torch.zeros(2, 5), 2)
    with pytest.raises(ValueError, match="pool_mode"):
        ops.roi_align(x, torch.zeros(2, 5), 2, pool_mode="median")
    with pytest.raises(ValueError, match="batch indices"):
        ops.roi_pool(x, torch.tensor([[1.0, 0, 0, 2, 2]]), 2)
    with pytest.raises(ValueError, match="offset"):
        ops.deform_roi_pool(x, torch.zeros(2, 5), torch.zeros(2, 2, 3, 3), 2)
    with pytest.raises(ValueError, match="output_size"):
        ops.roi_align(x, torch.zeros(2, 5), 0)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_rois_split_over_threads_at_inference_equal_one_call(op, monkeypatch) -> None:
    """At inference the reference pools chunks of RoIs in threads; the result equals torchvision's single call,
    and training (input requiring grad) still takes one call with a gradient."""
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 8, 40, 50, generator=gen)
    xy = torch.rand(200, 2, generator=gen) * 150
    rois = torch.cat([torch.randint(0, 2, (200, 1), generator=gen).float(), xy, xy + 4 + torch.rand(200, 2, generator=gen) * 60], 1)
    if op == "roi_align":
        ours = lambda x: reference.roi_align(x, rois, 7, 0.25, 2, True)  # noqa: E731
        theirs = lambda x: torchvision.ops.roi_align(x, rois, (7, 7), 0.25, 2, True)  # noqa: E731
    else:
        ours = lambda x: reference.roi_pool(x, rois, 7, 0.25)  # noqa: E731
        theirs = lambda x: torchvision.ops.roi_pool(x, rois, (7, 7), 0.25)  # noqa: E731
    calls = []
    original = torchvision.ops.roi_align if op == "roi_align" else torchvision.ops.roi_pool
    monkeypatch.setattr(torchvision.ops, op, lambda x, r, *a: calls.append(len(r)) or original(x, r, *a))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    with torch.inference_mode():
        split = ours(feat)
    assert calls == [67, 67, 66]  # three chunks, in order
    assert torch.equal(split, theirs(feat))
    calls.clear()
    trained = feat.clone().requires_grad_()
    ours(trained).sum().backward()
    assert calls == [200] and trained.grad is not None


def test_roi_thread_pool_is_reused_across_calls_of_different_sizes(monkeypatch) -> None:
    """RoI counts vary per call (and so the number of chunks); the pool must not be remade, leaking threads."""
    from detcore.ops.reference import roi as roi_module

    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    feat = torch.randn(1, 4, 20, 20)
    pools = set()
    with torch.inference_mode():
        for k in (40, 64, 200):
            rois = torch.tensor([[0.0, 1.0, 1.0, 15.0, 15.0]]).repeat(k, 1)
            assert torch.equal(reference.roi_align(feat, rois, 3, 1.0, 2, True),
                               torchvision.ops.roi_align(feat, rois, (3, 3), 1.0, 2, True))
            pools.add(id(roi_module._thread_pool()))
    assert len(pools) == 1
