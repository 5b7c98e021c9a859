"""The seeds' Albu and InstaBoost Mask R-CNN configs: their training pipelines run on shapes data and keep each
object's mask inside its box."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import masks_to_boxes

from detcore.config import load_config
from detcore.data.shapes import make_shapes
from detcore.registry import build


@pytest.mark.parametrize("name, package", [("mask_rcnn_r50_fpn_albu_1x_coco", "albumentations"),
                                           ("mask_rcnn_r50_fpn_instaboost_4x_coco", "instaboostfast")])
def test_training_pipeline_keeps_masks_on_boxes(name, package, tmp_path):
    pytest.importorskip(package)
    make_shapes(tmp_path, num_train=6, num_val=0, size=96, seed=4)
    cfg = load_config(name)
    pipeline = [dict(step) for step in cfg["train_pipeline"]]
    for step in pipeline:
        if step["type"] == "Resize":
            step["scale"] = [128, 128]
        for key in ("p", "aug_ratio"):  # make every random step happen
            if key in step:
                step[key] = 1.0
        for inner in step.get("transforms", []):
            inner["p"] = 1.0
    dataset = build("datasets", {"type": "CocoDataset", "data_root": str(tmp_path), "img_prefix": "train/",
                                 "ann_file": "annotations/instances_train.json", "pipeline": pipeline})
    np.random.seed(0)
    for i in range(len(dataset)):
        gt = dataset[i].gt
        assert len(gt.boxes) == len(gt.labels) == len(gt.masks) > 0
        drawn = gt.masks.flatten(1).any(1)
        extent = masks_to_boxes(gt.masks[drawn]) + torch.tensor([0, 0, 1, 1])
        boxes = gt.boxes[drawn]
        assert (extent[:, :2] >= boxes[:, :2] - 2.5).all() and (extent[:, 2:] <= boxes[:, 2:] + 2.5).all()
