"""NMS, batched NMS and Soft-NMS references against plain python loops."""

import math

import pytest
import torch

from detcore import ops
from detcore.ops import reference


def random_boxes(n: int, dtype=torch.float64) -> torch.Tensor:
    xy = torch.rand(n, 2, dtype=dtype) * 20
    wh = torch.rand(n, 2, dtype=dtype) * 15 + 1
    return torch.cat([xy, xy + wh], dim=1)


def iou_py(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def naive_nms(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(iou_py(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def naive_soft_nms(boxes, scores, thr, sigma, min_score, method):
    s = list(scores)
    live = [i for i in range(len(s)) if s[i] >= min_score]
    kept = []
    while live:
        best = max(live, key=lambda i: (s[i], -i))
        kept.append((best, s[best]))
        live.remove(best)
        for j in list(live):
            iou = iou_py(boxes[best], boxes[j])
            if method == "linear" and iou > thr:
                s[j] *= 1 - iou
            elif method == "gaussian":
                s[j] *= math.exp(-iou * iou / sigma)
            elif method == "naive" and iou > thr:
                s[j] = 0.0
            if s[j] < min_score:
                live.remove(j)
    return kept


@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_naive_loop(thr):
    boxes, scores = random_boxes(60), torch.rand(60, dtype=torch.float64)
    keep = ops.nms(boxes, scores, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == naive_nms(boxes.tolist(), scores.tolist(), thr)


def test_batched_nms_matches_per_class_loop():
    boxes, scores = random_boxes(80), torch.rand(80, dtype=torch.float64)
    idxs = torch.randint(0, 4, (80,))
    keep = ops.batched_nms(boxes, scores, idxs, 0.4)
    expected = []
    for c in range(4):
        members = [i for i in range(80) if idxs[i] == c]
        local = naive_nms([boxes[i].tolist() for i in members], [scores[i].item() for i in members], 0.4)
        expected += [members[i] for i in local]
    expected.sort(key=lambda i: -scores[i].item())
    assert keep.tolist() == expected
    # boxes of different classes never suppress each other: identical boxes in 2 classes both survive
    same = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    assert sorted(ops.batched_nms(same, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5).tolist()) == [0, 1]


@pytest.mark.parametrize("method", ["linear", "gaussian", "naive"])
def test_soft_nms_matches_naive_loop(method):
    boxes, scores = random_boxes(40), torch.rand(40, dtype=torch.float64)
    dets, inds = ops.soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=0.05, method=method)
    expected = naive_soft_nms(boxes.tolist(), scores.tolist(), 0.3, 0.5, 0.05, method)
    assert inds.tolist() == [i for i, _ in expected]
    torch.testing.assert_close(dets[:, 4], torch.tensor([s for _, s in expected], dtype=torch.float64))
    torch.testing.assert_close(dets[:, :4], boxes[inds])
    assert (dets[:, 4] >= 0.05).all()


def test_soft_nms_rescores_overlapping_box():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, inds = ops.soft_nms(boxes, scores, iou_threshold=0.3, method="linear")
    # IoU(box0, box1) = 0.5 > 0.3: 0.8 * (1 - 0.5) = 0.4, so box 2 (0.7) now ranks before box 1
    assert inds.tolist() == [0, 2, 1]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.9, 0.7, 0.4]))
    dets, inds = ops.soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.9, 0.7, 0.8 * math.exp(-0.25 / 0.5)]))


def test_soft_nms_naive_equals_hard_nms():
    boxes, scores = random_boxes(50), torch.rand(50, dtype=torch.float64) + 0.01
    _, inds = ops.soft_nms(boxes, scores, iou_threshold=0.45, min_score=1e-3, method="naive")
    assert inds.tolist() == ops.nms(boxes, scores, 0.45).tolist()


@pytest.mark.parametrize("method", ["linear", "gaussian"])
def test_soft_nms_gradcheck(method):
    boxes = random_boxes(6).requires_grad_()
    scores = (torch.rand(6, dtype=torch.float64) * 0.5 + 0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda b, s: reference.soft_nms(b, s, 0.1, 0.5, 1e-3, method)[0], (boxes, scores))


def test_empty_inputs():
    boxes, scores = torch.zeros(0, 4), torch.zeros(0)
    assert ops.nms(boxes, scores, 0.5).shape == (0,) and ops.nms(boxes, scores, 0.5).dtype == torch.int64
    keep = ops.batched_nms(boxes, scores, torch.zeros(0, dtype=torch.int64), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.int64
    dets, inds = ops.soft_nms(boxes, scores)
    assert dets.shape == (0, 5) and dets.dtype == torch.float32
    assert inds.shape == (0,) and inds.dtype == torch.int64
    # everything below min_score is dropped as well
    dets, inds = ops.soft_nms(random_boxes(3, torch.float32), torch.full((3,), 1e-4))
    assert dets.shape == (0, 5) and inds.shape == (0,)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="boxes"):
        ops.nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="scores"):
        ops.nms(torch.zeros(3, 4), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="method"):
        ops.soft_nms(torch.zeros(3, 4), torch.zeros(3), method="hard")
    with pytest.raises(TypeError, match="idxs"):
        ops.batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5)
    with pytest.raises(TypeError, match="boxes"):
        ops.nms([[0, 0, 1, 1]], torch.zeros(1), 0.5)
