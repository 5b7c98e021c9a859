"""``Albu`` (albumentations) and ``InstaBoost`` (instaboostfast): boxes, labels and masks stay aligned."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from detcore.optional import MissingExtraError
from detcore.registry import build

LOAD = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True}]


def _dataset(shapes_dir, steps):
    return build("datasets", {"type": "CocoDataset", "data_root": str(shapes_dir), "img_prefix": "train/",
                              "ann_file": "annotations/instances_train.json",
                              "pipeline": [*steps, {"type": "PackDetInputs"}]})


def _assert_masks_inside_boxes(sample, tol=1.5):
    gt = sample.gt
    assert len(gt.boxes) == len(gt.labels) == len(gt.masks)
    nonempty = gt.masks.flatten(1).any(1)
    assert nonempty.all()
    mask_boxes = masks_to_boxes(gt.masks) + torch.tensor([0, 0, 1, 1])  # pixel extents -> box edges
    assert (mask_boxes[:, :2] >= gt.boxes[:, :2] - tol).all() and (mask_boxes[:, 2:] <= gt.boxes[:, 2:] + tol).all()


def test_albu_flip_equals_random_flip(shapes_dir):
    pytest.importorskip("albumentations")
    albu = _dataset(shapes_dir, [*LOAD, {"type": "Albu", "transforms": [{"type": "HorizontalFlip", "p": 1.0}]}])
    ours = _dataset(shapes_dir, [*LOAD, {"type": "RandomFlip", "prob": 1.0}])
    for i in range(3):
        a, b = albu[i], ours[i]
        assert torch.equal(a.image, b.image)
        torch.testing.assert_close(a.gt.boxes, b.gt.boxes, atol=1e-4, rtol=0)
        assert torch.equal(a.gt.labels, b.gt.labels) and torch.equal(a.gt.masks, b.gt.masks)


def test_albu_crop_drops_objects_with_their_labels_and_masks(shapes_dir):
    pytest.importorskip("albumentations")
    crop = {"type": "Albu", "transforms": [{"type": "OneOf", "p": 1.0, "transforms": [
                {"type": "Crop", "x_min": 0, "y_min": 0, "x_max": 48, "y_max": 48, "p": 1.0}]}],
            "bbox_params": {"type": "BboxParams", "format": "pascal_voc", "label_fields": ["gt_labels"],
                            "min_visibility": 0.3, "filter_lost_elements": True}}
    cropped = _dataset(shapes_dir, [*LOAD, crop])
    full = _dataset(shapes_dir, LOAD)
    dropped = 0
    for i in range(8):
        sample, original = cropped[i], full[i]
        assert sample.image.shape[-2:] == (48, 48) and sample.meta.img_shape == (48, 48)
        _assert_masks_inside_boxes(sample)
        # every kept object is an original one, clipped to the crop
        for box, label in zip(sample.gt.boxes, sample.gt.labels):
            clipped = original.gt.boxes.clamp(max=48)
            match = ((clipped - box).abs().max(1).values < 1e-3) & (original.gt.labels == label)
            assert match.any()
        dropped += len(original.gt) - len(sample.gt)
    assert dropped > 0


def test_albu_bad_name_and_missing_package(monkeypatch):
    pytest.importorskip("albumentations")
    from detcore.data.transforms.albu import Albu
    from detcore.errors import ConfigError

    with pytest.raises(ConfigError, match="'Blurrr' is not an albumentations transform"):
        Albu(transforms=[{"type": "Blurrr"}])
    monkeypatch.setitem(sys.modules, "albumentations", None)
    with pytest.raises(MissingExtraError, match=r"detcore\[albu\]"):
        Albu(transforms=[])


def test_instaboost_moves_objects_keeping_masks_on_boxes(shapes_dir):
    pytest.importorskip("instaboostfast")
    from detcore.data.transforms.instaboost import InstaBoost, mask_to_polygons

    np.random.seed(0)
    step = InstaBoost(aug_ratio=1.0, color_prob=0.0)
    boosted = _dataset(shapes_dir, [LOAD[0], step, LOAD[1]])
    plain = _dataset(shapes_dir, LOAD)
    changed = 0
    for i in range(6):
        sample, original = boosted[i], plain[i]
        _assert_masks_inside_boxes(sample, tol=2.0)
        assert sorted(sample.gt.labels.tolist()) == sorted(original.gt.labels.tolist())
        changed += int(not torch.equal(sample.gt.boxes, original.gt.boxes))
    assert changed > 0 and step.failures == 0
    two_blobs = np.zeros((8, 12), np.uint8)
    two_blobs[1:3, 1:3] = 1
    two_blobs[1:6, 6:11] = 1
    assert len(mask_to_polygons(two_blobs)) == 2


def test_instaboost_missing_package_and_order(monkeypatch, shapes_dir):
    from detcore.data.transforms.instaboost import InstaBoost
    from detcore.errors import DataError

    if importlib.util.find_spec("instaboostfast") is not None:
        with pytest.raises(DataError, match="before LoadAnnotations"):
            _dataset(shapes_dir, [*LOAD, {"type": "InstaBoost", "aug_ratio": 1.0}])[0]
    monkeypatch.setitem(sys.modules, "instaboostfast", None)
    with pytest.raises(MissingExtraError, match=r"detcore\[instaboost\]"):
        InstaBoost()
