"""make_shapes determinism and annotation / pixel consistency; the make-shapes and browse-dataset commands."""

from __future__ import annotations

import argparse
import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.cli.commands import datasets as dataset_commands
from detcore.data.shapes import make_shapes


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    dataset_commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_same_seed_same_bytes_other_seed_differs(tmp_path, shapes_dir):
    assert run_cli(["make-shapes", str(tmp_path / "a"), "--num-train", "16", "--num-val", "4", "--size", "96",
                    "--seed", "3"]) == 0
    for split in ("train", "val"):
        name = f"annotations/instances_{split}.json"
        assert (tmp_path / "a" / name).read_bytes() == (shapes_dir / name).read_bytes()
    assert (tmp_path / "a/train/000005.png").read_bytes() == (shapes_dir / "train/000005.png").read_bytes()
    make_shapes(tmp_path / "b", num_train=16, num_val=0, size=96, seed=4)
    assert (tmp_path / "b/annotations/instances_train.json").read_bytes() != (
        shapes_dir / "annotations/instances_train.json").read_bytes()


def test_annotations_match_drawn_pixels(shapes_dir):
    coco = json.loads((shapes_dir / "annotations/instances_train.json").read_text())
    assert {c["name"] for c in coco["categories"]} == {"rectangle", "ellipse", "triangle"}
    assert len(coco["images"]) == 16
    per_image = {}
    for a in coco["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    assert min(len(v) for v in per_image.values()) >= 1 and max(len(v) for v in per_image.values()) >= 3
    assert {a["category_id"] for a in coco["annotations"]} == {1, 2, 3}
    for img in coco["images"]:
        pixels = np.asarray(Image.open(shapes_dir / "train" / img["file_name"]), dtype=np.float64)
        union = np.zeros(pixels.shape[:2], dtype=bool)
        for a in per_image.get(img["id"], []):
            rle = mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], img["height"], img["width"]))
            mask = mask_utils.decode(rle).astype(bool)
            ys, xs = np.nonzero(mask)
            x, y = xs.min(), ys.min()
            assert a["bbox"] == [x, y, xs.max() + 1 - x, ys.max() + 1 - y]
            assert a["area"] == mask.sum() > 20
            assert (mask & union).sum() <= 0.05 * mask.sum()  # visible parts barely overlap
            union |= mask
            # the pixels under the visible mask are the object's colour: low spread inside
            inner = pixels[mask]
            assert inner.std(axis=0).max() < 25
            hue_channel = {1: 0, 2: 1, 3: 2}[a["category_id"]]  # red / green / blue dominant
            assert int(np.argmax(inner.mean(axis=0))) == hue_channel


def test_browse_dataset_writes_drawings(tmp_path, shapes_dir):
    config = tmp_path / "browse.toml"
    config.write_text(f"""
[train_dataloader.dataset]
type = "CocoDataset"
data_root = "{shapes_dir}"
ann_file = "annotations/instances_train.json"
img_prefix = "train/"
pipeline = [
  {{type = "LoadImageFromFile"}},
  {{type = "LoadAnnotations", with_mask = true}},
  {{type = "Resize", scale = [128, 128]}},
  {{type = "Normalize", mean = [100.0, 100.0, 100.0], std = [50.0, 50.0, 50.0]}},
  {{type = "PackDetInputs"}},
]
""")
    assert run_cli(["browse-dataset", str(config), "--out-dir", str(tmp_path / "out"), "--num", "2"]) == 0
    files = sorted((tmp_path / "out").glob("*.png"))
    assert [f.name for f in files] == ["0000_000000.png", "0001_000001.png"]
    drawn = np.asarray(Image.open(files[0]))
    raw = np.asarray(Image.open(shapes_dir / "train/000000.png").resize((128, 128)))
    assert drawn.shape == (128, 128, 3)
    assert np.abs(drawn.astype(int) - raw.astype(int)).mean() > 1  # boxes / masks were drawn on it
