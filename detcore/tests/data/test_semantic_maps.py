"""Semantic maps for methods with a semantic branch (HTC): ``make-shapes --with-seg``, loading through
``CocoDataset(seg_prefix=...)``, alignment with boxes and masks under the geometric transforms, batching."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.cli.commands import datasets as dataset_commands
from detcore.data.datasets.coco import CocoDataset
from detcore.data.loader import build_dataloader
from detcore.data.transforms.formatting import PackDetInputs
from detcore.data.transforms import geometric as geo
from detcore.data.transforms.loading import LoadAnnotations, LoadImageFromFile
from detcore.errors import DataError
from detcore.registry import build

LOAD = [LoadImageFromFile(), LoadAnnotations(with_mask=True, with_seg=True)]


def seg_dataset(root, pipeline=LOAD, **kwargs) -> CocoDataset:
    return CocoDataset("annotations/instances_train.json", data_root=root, img_prefix="train/",
                       seg_prefix="stuffthingmaps/train/", pipeline=pipeline, **kwargs)


def test_maps_are_category_per_visible_polygon_and_ignore_elsewhere(shapes_seg_dir, shapes_dir):
    # --with-seg adds the maps and changes nothing else
    assert (shapes_seg_dir / "train/000005.png").read_bytes() == (shapes_dir / "train/000005.png").read_bytes()
    coco = json.loads((shapes_seg_dir / "annotations/instances_train.json").read_text())
    for img in coco["images"]:
        seg = np.asarray(Image.open(shapes_seg_dir / "stuffthingmaps/train" / img["file_name"]))
        assert seg.shape == (img["height"], img["width"]) and seg.dtype == np.uint8
        union = np.zeros(seg.shape, dtype=bool)
        for a in (a for a in coco["annotations"] if a["image_id"] == img["id"]):
            rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], img["height"], img["width"]))
            mask = mask_utils.decode(rle).astype(bool)
            assert (seg[mask] == a["category_id"] - 1).mean() >= 0.95  # visible parts barely overlap
            union |= mask
        assert (seg[~union] == 255).all()
        assert set(np.unique(seg)) <= {0, 1, 2, 255}


def assert_seg_aligned(sample, tol: float = 1.0) -> None:
    """The map agrees with every object's mask and label, its pixels of each object span the object's
    box, and every pixel outside the objects (padding included) is 255."""
    seg, gt = sample.gt_sem_seg, sample.gt
    assert seg.shape == sample.image.shape[-2:] and seg.dtype == torch.int64
    assert len(gt) > 0
    for mask, label, box in zip(gt.masks, gt.labels, gt.boxes):
        on_object = mask & (seg == label)
        assert on_object.sum() >= 0.95 * mask.sum()
        ys, xs = torch.nonzero(on_object, as_tuple=True)
        seg_box = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
        assert (seg_box - box).abs().max() <= tol, (seg_box, box)
    assert seg[~gt.masks.any(dim=0)].eq(255).all()


TRANSFORMS = {
    "resize_up": lambda: geo.Resize(scale=(200, 150)),
    "resize_exact": lambda: geo.Resize(scale=(130, 110), keep_ratio=False),
    "flip_horizontal": lambda: geo.RandomFlip(prob=1.0, direction="horizontal"),
    "flip_vertical": lambda: geo.RandomFlip(prob=1.0, direction="vertical"),
    "flip_diagonal": lambda: geo.RandomFlip(prob=1.0, direction="diagonal"),
    "pad_divisor": lambda: geo.Pad(size_divisor=64),
    "pad_fixed": lambda: geo.Pad(size=(130, 150)),
    "random_crop": lambda: geo.RandomCrop(crop_size=(60, 70), allow_negative_crop=True),
    "expand": lambda: geo.Expand(mean=(10, 20, 30), ratio_range=(1.5, 3), prob=1.0),
    "min_iou_crop": lambda: geo.MinIoURandomCrop(min_ious=(0.1, 0.3), min_crop_size=0.3),
    "resize_flip_pad": lambda: [geo.Resize(scale=(150, 120)), geo.RandomFlip(prob=1.0), geo.Pad(size_divisor=32)],
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_seg_map_follows_boxes_and_masks(shapes_seg_dir, name):
    np.random.seed(0)
    dataset = seg_dataset(shapes_seg_dir)
    steps = TRANSFORMS[name]()
    steps = steps if isinstance(steps, list) else [steps]
    for index in range(4):
        results = dataset[index]
        for step in steps:
            results = step(results)
        sample = PackDetInputs()(results)
        if len(sample.gt) == 0:  # a crop without objects (allowed here)
            assert sample.gt_sem_seg.eq(255).all()
            continue
        assert_seg_aligned(sample)
        if name.startswith("pad"):
            h, w = sample.meta.img_shape
            assert sample.gt_sem_seg[h:].eq(255).all() and sample.gt_sem_seg[:, w:].eq(255).all()


def test_seg_rescale_after_pad_gives_the_map_at_one_eighth(shapes_seg_dir):
    results = geo.Pad(size_divisor=32)(geo.Resize(scale=(150, 120))(seg_dataset(shapes_seg_dir)[0]))
    full = PackDetInputs()(results).gt_sem_seg
    small = PackDetInputs()(geo.SegRescale(scale_factor=1 / 8)(results)).gt_sem_seg
    assert full.shape == (128, 128) and small.shape == (16, 16)
    assert torch.equal(small, full[::8, ::8])  # nearest sampling of the padded map


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    dataset_commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_make_shapes_with_seg_round_trip_through_dataset_pipeline_and_loader(tmp_path):
    root = tmp_path / "shapes"
    assert run_cli(["make-shapes", str(root), "--num-train", "4", "--num-val", "1", "--size", "64",
                    "--with-seg"]) == 0
    assert sorted(p.name for p in (root / "stuffthingmaps/train").iterdir()) == [f"00000{i}.png" for i in range(4)]
    assert (root / "stuffthingmaps/val/000000.png").is_file()
    dataset = build("datasets", {
        "type": "CocoDataset", "data_root": str(root), "ann_file": "annotations/instances_train.json",
        "img_prefix": "train/", "seg_prefix": "stuffthingmaps/train/",
        "pipeline": [
            {"type": "LoadImageFromFile"},
            {"type": "LoadAnnotations", "with_bbox": True, "with_mask": True, "with_seg": True},
            {"type": "Resize", "scale": [96, 80], "keep_ratio": True},
            {"type": "RandomFlip", "prob": 0.5},
            {"type": "Pad", "size_divisor": 32},
            {"type": "SegRescale", "scale_factor": 0.125},
            {"type": "PackDetInputs"},
        ],
    })
    loader = build_dataloader(dataset, batch_size=2, seed=0)
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        assert batch.images.shape == (2, 3, 96, 96) and batch.gt_sem_seg.shape == (2, 12, 12)
        for seg, gt in zip(batch.gt_sem_seg, batch.gt):
            assert set(seg.unique().tolist()) <= {0, 1, 2, 255}
            assert set(seg.unique().tolist()) & set(gt.labels.tolist())  # objects show up in the map


def test_seg_loading_errors_name_the_key_and_the_file(shapes_seg_dir, tmp_path):
    no_prefix = CocoDataset("annotations/instances_train.json", data_root=shapes_seg_dir, img_prefix="train/",
                            pipeline=LOAD)
    with pytest.raises(DataError, match="has no seg_prefix; set seg_prefix"):
        no_prefix[0]
    (tmp_path / "maps").mkdir()
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "maps/000000.png")
    wrong = CocoDataset("annotations/instances_train.json", data_root=shapes_seg_dir, img_prefix="train/",
                        seg_prefix=tmp_path / "maps", pipeline=LOAD)
    with pytest.raises(DataError, match=r"000000.png is 12x10 but image 1 is 96x96"):
        wrong[0]
    with pytest.raises(ValueError, match="seg_background must be in"):
        dataset_commands.make_shapes_command(argparse.Namespace(
            out_dir=tmp_path / "x", num_train=1, num_val=0, size=64, seed=0, with_seg=True, seg_background=1))
