"""CocoDataset: conversions, crowd / ignore, masks, id mapping, filtering, and reporting bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from detcore.data.datasets.coco import CocoDataset
from detcore.data.transforms.formatting import PackDetInputs
from detcore.data.transforms.loading import LoadAnnotations, LoadImageFromFile
from detcore.errors import DataError

from .conftest import ann, write_coco

CATS = [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}, {"id": 11, "name": "bird"}]
PIPELINE = [LoadImageFromFile(), LoadAnnotations(with_mask=True), PackDetInputs()]


def square_rle(h: int, w: int, box: tuple[int, int, int, int]) -> dict:
    m = np.zeros((h, w), dtype=np.uint8, order="F")
    x1, y1, x2, y2 = box
    m[y1:y2, x1:x2] = 1
    rle = mask_utils.encode(m)
    return {"size": rle["size"], "counts": rle["counts"].decode()}


@pytest.fixture
def coco_file(tmp_path):
    images = [
        {"id": 10, "file_name": "a.png", "width": 40, "height": 30},
        {"id": 20, "file_name": "b.png", "width": 30, "height": 40},
        {"id": 30, "file_name": "empty.png", "width": 20, "height": 20},
        {"id": 40, "file_name": "crowd_only.png", "width": 20, "height": 20},
    ]
    anns = [
        ann(1, 10, 7, [2, 3, 10, 5], segmentation=[[2, 3, 12, 3, 12, 8, 2, 8]]),
        ann(2, 10, 11, [20, 10, 8, 8], segmentation=square_rle(30, 40, (20, 10, 28, 18))),
        ann(3, 10, 3, [0, 0, 40, 30], iscrowd=1,
            segmentation={"size": [30, 40], "counts": [0, 1200]}),
        ann(4, 20, 3, [5, 5, 10, 20], segmentation=[[5, 5, 15, 5, 15, 25, 5, 25]]),
        ann(5, 20, 7, [1, 1, 4, 4], ignore=True, segmentation=[[1, 1, 5, 1, 5, 5]]),
        ann(6, 40, 11, [0, 0, 10, 10], iscrowd=1, segmentation=square_rle(20, 20, (0, 0, 10, 10))),
    ]
    return write_coco(tmp_path, images, anns, CATS)


def make(path, **kwargs):
    return CocoDataset(path, img_prefix=path.parent / "img", pipeline=PIPELINE, **kwargs)


def test_boxes_labels_ids_and_masks(coco_file):
    ds = make(coco_file, filter_empty_gt=False)
    assert ds.classes == ["cat", "dog", "bird"] and ds.cat_ids == [3, 7, 11]
    assert len(ds) == 4 and ds.coco.getImgIds() == [10, 20, 30, 40]
    info = ds.get_data_info(0)
    assert (info["width"], info["height"], info["file_name"], info["img_id"]) == (40, 30, "a.png", 10)
    np.testing.assert_allclose(info["ann"]["bboxes"], [[2, 3, 12, 8], [20, 10, 28, 18]])
    assert info["ann"]["labels"].tolist() == [1, 2]
    sample = ds[0]
    assert sample.gt.labels.tolist() == [1, 2]
    assert sample.gt.masks.shape == (2, 30, 40)
    assert int(sample.gt.masks[1].sum()) == 64 and bool(sample.gt.masks[1, 10:18, 20:28].all())
    assert int(sample.gt.masks[0, 3:8, 2:12].sum()) == 50
    # crowd (uncompressed RLE) -> ignored
    assert sample.ignored.boxes.tolist() == [[0.0, 0.0, 40.0, 30.0]] and sample.ignored.labels.tolist() == [0]


def test_ignore_flag_goes_to_ignored(coco_file):
    sample = make(coco_file)[1]
    assert sample.gt.labels.tolist() == [0]
    assert sample.ignored.boxes.tolist() == [[1.0, 1.0, 5.0, 5.0]]


def test_filter_empty_gt_only_in_training(coco_file):
    assert [make(coco_file).get_data_info(i)["img_id"] for i in range(2)] == [10, 20]
    assert len(make(coco_file)) == 2  # empty image and crowd-only image dropped
    assert len(make(coco_file, test_mode=True)) == 4
    assert len(make(coco_file, filter_empty_gt=False)) == 4
    empty = make(coco_file, filter_empty_gt=False)[2]
    assert len(empty.gt) == 0 and empty.gt.masks.shape == (0, 20, 20)


def test_class_subset_in_given_order(coco_file):
    ds = make(coco_file, classes=["bird", "cat"])
    assert ds.cat_ids == [11, 3] and ds.classes == ["bird", "cat"]
    assert [ds.get_data_info(i)["img_id"] for i in range(len(ds))] == [10, 20]
    assert ds.get_data_info(0)["ann"]["labels"].tolist() == [0]  # only the bird, label 0
    with pytest.raises(DataError, match="horse"):
        make(coco_file, classes=["horse"])


def test_min_box_size_drops_small_boxes(coco_file):
    ds = make(coco_file, min_box_size=9)  # image 10's boxes are 10x5 and 8x8: dropped, image filtered
    assert [ds.get_data_info(i)["img_id"] for i in range(len(ds))] == [20]
    np.testing.assert_allclose(ds.get_data_info(0)["ann"]["bboxes"], [[5, 5, 15, 25]])


def _problem_file(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 50, "height": 50},
        {"id": 1, "file_name": "dup.png", "width": 50, "height": 50},
        {"id": 2, "file_name": "b.png", "height": 50},
        {"id": 3, "file_name": "c.png", "width": 50, "height": 50},
    ]
    anns = [
        ann(1, 1, 3, [40, 40, 30, 30]),  # outside
        ann(2, 1, 3, [5, 5, 0, 10]),  # zero area
        ann(3, 1, 99, [1, 1, 5, 5]),  # unknown category
        ann(4, 77, 3, [1, 1, 5, 5]),  # unknown image
        {"id": 5, "image_id": 3, "category_id": 3},  # no bbox
        ann(6, 3, 3, [1, 1, 5, 5]),
    ]
    return write_coco(tmp_path, images, anns, CATS)


def test_every_problem_is_reported_at_once(tmp_path):
    path = _problem_file(tmp_path)
    with pytest.raises(DataError) as info:
        make(path)
    text = str(info.value)
    assert str(path) in text and "7 problem(s)" in text
    for needle in ("duplicate image id 1", "image 2 (b.png): missing key(s) ['width']",
                   "annotation 1 of image 1: box [40.0, 40.0, 70.0, 70.0] extends outside",
                   "annotation 2 of image 1: box [5.0, 5.0, 5.0, 15.0] has zero area",
                   "annotation 3 of image 1: category id 99", "annotation 4 of image 77: image id 77",
                   "annotation 5 of image 3: missing key(s) ['bbox']"):
        assert needle in text


def test_bad_boxes_skip_and_clip_with_warning(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 50, "height": 50}]
    anns = [ann(1, 1, 3, [40, 40, 30, 30]), ann(2, 1, 3, [5, 5, 0, 10]), ann(3, 1, 7, [1, 1, 5, 5]),
            ann(4, 1, 3, [10, 10, 40.5, 5])]  # overshoots by 0.5 px: clipped silently
    path = write_coco(tmp_path, images, anns, CATS)
    with pytest.warns(UserWarning, match="skipped 2 and clipped 0"):
        ds = make(path, on_bad_box="skip")
    np.testing.assert_allclose(ds.get_data_info(0)["ann"]["bboxes"], [[1, 1, 6, 6], [10, 10, 50, 15]])
    with pytest.warns(UserWarning, match="skipped 1 and clipped 1"):
        ds = make(path, on_bad_box="clip")
    np.testing.assert_allclose(ds.get_data_info(0)["ann"]["bboxes"], [[40, 40, 50, 50], [1, 1, 6, 6], [10, 10, 50, 15]])


def test_missing_top_level_keys_and_malformed_json(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="'categories' is missing"):
        CocoDataset(path)
    path.write_text('{"images": [1, 2,]')
    with pytest.raises(DataError, match=r"x\.json is not valid JSON.*line 1"):
        CocoDataset(path)
    with pytest.raises(DataError, match="nothere.json does not exist"):
        CocoDataset(tmp_path / "nothere.json")


def test_bad_segmentations_are_reported(tmp_path):
    images = [{"id": 1, "file_name": "a.png", "width": 50, "height": 50}]
    anns = [ann(1, 1, 3, [1, 1, 5, 5], segmentation=[[1, 2, 3, 4]]),
            ann(2, 1, 3, [1, 1, 5, 5], segmentation={"size": [10, 10], "counts": "abc"})]
    with pytest.raises(DataError) as info:
        make(write_coco(tmp_path, images, anns, CATS))
    assert "annotation 1 of image 1: a polygon needs" in str(info.value)
    assert "annotation 2 of image 1: RLE size [10, 10]" in str(info.value)


def test_missing_image_file_checked_up_front(tmp_path):
    images = [{"id": 5, "file_name": "gone.png", "width": 50, "height": 50}]
    path = write_coco(tmp_path, images, [ann(1, 5, 3, [1, 1, 5, 5])], CATS, make_files=False)
    with pytest.raises(DataError, match="image 5: file .*gone.png does not exist"):
        make(path, check_files=True)
    ds = make(path)  # unchecked: the loader names the file when it is read
    with pytest.raises(DataError, match="gone.png"):
        ds[0]


def test_shapes_dataset_loads(shapes_dir):
    ds = CocoDataset("annotations/instances_val.json", data_root=shapes_dir, img_prefix="val/",
                     pipeline=PIPELINE, check_files=True)
    assert ds.classes == ["rectangle", "ellipse", "triangle"] and len(ds) == 4
    sample = ds[0]
    assert sample.image.shape == (3, 96, 96) and sample.image.dtype == torch.float32
    assert len(sample.gt) == len(ds.coco.getAnnIds(imgIds=[ds.get_data_info(0)["img_id"]]))
