import torch
from torchvision.ops import box_convert, box_iou, generalized_box_iou

from dc_helpers import random_boxes
from det_common.bbox import (
    bbox2distance, bbox2roi, bbox_cxcywh_to_xyxy, bbox_flip, bbox_overlaps, bbox_rescale, bbox_xyxy_to_cxcywh,
    distance2bbox, roi2bbox,
)


def test_iou_and_giou_match_torchvision():
    g = torch.Generator().manual_seed(0)
    a, b = random_boxes(30, generator=g), random_boxes(20, generator=g)
    torch.testing.assert_close(bbox_overlaps(a, b), box_iou(a, b), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bbox_overlaps(a, b, mode="giou"), generalized_box_iou(a, b), rtol=1e-5, atol=1e-6)
    aligned = bbox_overlaps(a[:20], b, is_aligned=True)
    torch.testing.assert_close(aligned, box_iou(a[:20], b).diagonal(), rtol=1e-5, atol=1e-6)
    aligned_g = bbox_overlaps(a[:20], b, mode="giou", is_aligned=True)
    torch.testing.assert_close(aligned_g, generalized_box_iou(a[:20], b).diagonal(), rtol=1e-5, atol=1e-6)


def test_iof_and_batch_dims():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 5.0, 30.0, 30.0], [20.0, 20.0, 30.0, 30.0]])
    torch.testing.assert_close(bbox_overlaps(a, b, mode="iof"), torch.tensor([[0.25, 0.0]]))
    batched = bbox_overlaps(torch.stack([a, a]), torch.stack([b, b]))
    assert batched.shape == (2, 1, 2)
    torch.testing.assert_close(batched[1], box_iou(a, b))
    # degenerate boxes give 0 rather than NaN
    zero = torch.zeros(1, 4)
    assert bbox_overlaps(zero, zero).item() == 0.0


def test_roi_packing_roundtrip():
    boxes = [torch.rand(3, 4), torch.rand(0, 4), torch.rand(2, 4)]
    rois = bbox2roi(boxes)
    assert rois[:, 0].tolist() == [0, 0, 0, 2, 2]
    back = roi2bbox(rois, num_images=3)
    for orig, got in zip(boxes, back):
        torch.testing.assert_close(orig, got)


def test_flip_rescale_and_formats():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    assert bbox_flip(boxes, (100, 200), "horizontal").tolist() == [[170.0, 20.0, 190.0, 60.0]]
    assert bbox_flip(boxes, (100, 200), "vertical").tolist() == [[10.0, 40.0, 30.0, 80.0]]
    assert bbox_flip(boxes, (100, 200), "diagonal").tolist() == [[170.0, 40.0, 190.0, 80.0]]
    assert bbox_rescale(boxes, 2.0).tolist() == [[0.0, 0.0, 40.0, 80.0]]
    rois = torch.cat([torch.ones(1, 1), boxes], dim=1)
    assert bbox_rescale(rois, 0.5).tolist() == [[1.0, 15.0, 30.0, 25.0, 50.0]]
    g = torch.Generator().manual_seed(1)
    b = random_boxes(10, generator=g)
    torch.testing.assert_close(bbox_xyxy_to_cxcywh(b), box_convert(b, "xyxy", "cxcywh"))
    torch.testing.assert_close(bbox_cxcywh_to_xyxy(bbox_xyxy_to_cxcywh(b)), b)


def test_distance_roundtrip_and_clipping():
    points = torch.tensor([[50.0, 50.0], [5.0, 5.0]])
    boxes = torch.tensor([[40.0, 30.0, 70.0, 90.0], [0.0, 0.0, 20.0, 10.0]])
    dist = bbox2distance(points, boxes)
    assert dist.tolist() == [[10.0, 20.0, 20.0, 40.0], [5.0, 5.0, 15.0, 5.0]]
    torch.testing.assert_close(distance2bbox(points, dist), boxes)
    clipped = distance2bbox(points, dist, max_shape=(80, 60))
    assert clipped.tolist() == [[40.0, 30.0, 60.0, 80.0], [0.0, 0.0, 20.0, 10.0]]
    torch.testing.assert_close(bbox2distance(points, boxes, max_dis=12.0).max(), torch.tensor(11.9))
