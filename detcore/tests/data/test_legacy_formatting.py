"""Pipelines ported from MMDetection v2 configs (DefaultFormatBundle, Collect, ImageToTensor, ...) give the
samples a PackDetInputs pipeline gives, each legacy name noting PackDetInputs once in one line."""

from __future__ import annotations

import warnings

import torch

from detcore.data.transforms import legacy_formatting
from detcore.registry import build

NORM = {"type": "Normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "to_rgb": True}
TRAIN_HEAD = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True},
              {"type": "Resize", "scale": [128, 128], "keep_ratio": True}, NORM, {"type": "Pad", "size_divisor": 32}]
TEST_HEAD = [{"type": "LoadImageFromFile"}, {"type": "Resize", "scale": [128, 128], "keep_ratio": True}, NORM,
             {"type": "Pad", "size_divisor": 32}]


def _dataset(shapes_dir, pipeline, test_mode=False):
    return build("datasets", {"type": "CocoDataset", "data_root": str(shapes_dir), "img_prefix": "train/",
                              "ann_file": "annotations/instances_train.json", "pipeline": pipeline,
                              "test_mode": test_mode})


def _same(a, b):
    assert torch.equal(a.image, b.image)
    assert a.meta.img_shape == b.meta.img_shape and a.meta.scale_factor == b.meta.scale_factor
    assert a.meta.file_name == b.meta.file_name
    if a.gt is None:
        assert b.gt is None
    else:
        assert torch.equal(a.gt.boxes, b.gt.boxes) and torch.equal(a.gt.labels, b.gt.labels)


def test_ported_train_and_test_pipelines_match_pack_det_inputs(shapes_dir):
    legacy_formatting._warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_legacy = _dataset(shapes_dir, [*TRAIN_HEAD, {"type": "DefaultFormatBundle"},
                                             {"type": "Collect", "keys": ["img", "gt_bboxes", "gt_labels"]}])
        test_legacy = _dataset(shapes_dir, [*TEST_HEAD, {"type": "ImageToTensor", "keys": ["img"]},
                                            {"type": "Collect", "keys": ["img"]}], test_mode=True)
        _dataset(shapes_dir, [*TEST_HEAD, {"type": "Transpose", "keys": ["img"], "order": [2, 0, 1]},
                              {"type": "ToTensor", "keys": ["img"]}, {"type": "ToDataContainer"},
                              {"type": "WrapFieldsToLists"}, {"type": "Collect", "keys": ["img"]}], test_mode=True)
    notes = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert len(notes) == 7  # once per name: DefaultFormatBundle, Collect, ImageToTensor, Transpose, ToTensor, ...
    assert all("PackDetInputs" in n and "\n" not in n for n in notes)
    train_new = _dataset(shapes_dir, [*TRAIN_HEAD, {"type": "PackDetInputs"}])
    test_new = _dataset(shapes_dir, [*TEST_HEAD, {"type": "PackDetInputs"}], test_mode=True)
    for i in range(3):
        _same(train_legacy[i], train_new[i])
        _same(test_legacy[i], test_new[i])


def test_collect_keys_choose_the_annotations(shapes_dir):
    with_masks = _dataset(shapes_dir, [*TRAIN_HEAD, {"type": "Collect", "keys": ["img", "gt_bboxes", "gt_labels",
                                                                                  "gt_masks"]}])[0]
    without = _dataset(shapes_dir, [*TRAIN_HEAD, {"type": "Collect", "keys": ["img", "gt_bboxes", "gt_labels"]}])[0]
    assert with_masks.gt.masks is not None and with_masks.gt.masks.shape[0] == len(with_masks.gt.boxes)
    assert getattr(without.gt, "masks", None) is None
