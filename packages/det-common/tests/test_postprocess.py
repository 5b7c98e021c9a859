import torch
from torchvision.ops import batched_nms, nms

from dc_helpers import random_boxes
from det_common.postprocess import batched_nms_with_cfg, multiclass_nms


def _reference(boxes, scores, score_thr, iou, max_per_img):
    """Per-class torchvision NMS over (box, class) pairs above the threshold, sorted by score."""
    num, num_classes = scores.shape
    out = []
    for c in range(num_classes):
        b = boxes if boxes.dim() == 2 else boxes[:, c]
        s = scores[:, c]
        m = s > score_thr
        keep = nms(b[m], s[m], iou)
        for k in keep:
            out.append((s[m][k].item(), c, b[m][k]))
    out.sort(key=lambda t: -t[0])
    return out[:max_per_img]


def test_multiclass_nms_matches_per_class_torchvision_nms():
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(60, generator=g)
    scores = torch.rand(60, 3, generator=g)
    result = multiclass_nms(boxes, scores, score_thr=0.3, nms_cfg={"type": "nms", "iou_threshold": 0.4},
                            max_per_img=25)
    expected = _reference(boxes, scores, 0.3, 0.4, 25)
    assert len(result) == len(expected)
    torch.testing.assert_close(result.scores, torch.tensor([e[0] for e in expected]))
    assert result.labels.tolist() == [e[1] for e in expected]
    torch.testing.assert_close(result.boxes, torch.stack([e[2] for e in expected]))
    per_class = random_boxes(60 * 3, generator=g).reshape(60, 3, 4)
    result2, rows = multiclass_nms(per_class, scores, 0.3, {"type": "nms", "iou_threshold": 0.4}, return_inds=True)
    expected2 = _reference(per_class, scores, 0.3, 0.4, 1000)
    assert result2.labels.tolist() == [e[1] for e in expected2]
    torch.testing.assert_close(per_class[rows, result2.labels], result2.boxes)


def test_class_agnostic_score_factors_and_empty():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.05, 0.6]])
    agnostic = multiclass_nms(boxes, scores, 0.1, {"type": "nms", "iou_threshold": 0.5}, class_agnostic=True)
    assert agnostic.labels.tolist() == [0, 1]
    torch.testing.assert_close(agnostic.scores, torch.tensor([0.9, 0.6]))
    factors = torch.tensor([0.5, 1.0, 1.0])
    res = multiclass_nms(boxes, scores, 0.1, None, score_factors=factors)
    torch.testing.assert_close(res.scores, torch.tensor([0.8, 0.6, 0.45]))  # class 0: box 1 suppressed by box 0
    empty = multiclass_nms(boxes, scores, 0.95, None)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)


def test_soft_nms_cfg_and_max_num():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 9.0], [20.0, 20.0, 30.0, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    idxs = torch.tensor([0, 0, 1])
    dets, keep = batched_nms_with_cfg(boxes, scores, idxs, {"type": "soft_nms", "iou_threshold": 0.3,
                                                            "method": "linear", "min_score": 0.01})
    # box 1 overlaps box 0 with IoU 0.9: its score becomes 0.8 * (1 - 0.9)
    assert keep.tolist() == [0, 2, 1]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.9, 0.7, 0.08]))
    dets, keep = batched_nms_with_cfg(boxes, scores, idxs, {"type": "nms", "iou_threshold": 0.5, "max_num": 1})
    assert keep.tolist() == [0]
    _, keep = batched_nms_with_cfg(boxes, scores, idxs, {"type": "nms", "iou_threshold": 0.5})
    assert keep.tolist() == batched_nms(boxes, scores, idxs, 0.5).tolist()
