"""``detcore convert-dataset cityscapes``: the official Cityscapes layout to COCO-format instance annotations.

Reads ``gtFine/<split>/<city>/<name>_gtFine_instanceIds.png`` (16-bit: ``label_id * 1000 + k`` for an
instance, the bare ``label_id`` for a crowd region or a class without instances, 0 unlabeled) next to
``leftImg8bit/<split>/<city>/<name>_leftImg8bit.png``, and writes ``instancesonly_filtered_gtFine_<split>.json``:
one RLE-masked annotation per instance (and per crowd region, ``iscrowd = 1``) of the eight evaluated classes
with instances; caravan and trailer (instances, not evaluated) and the classes without instances are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.data.datasets.cityscapes import CITYSCAPES_CLASSES
from detcore.errors import DataError

#: label ids of classes with instances that Cityscapes does not evaluate (caravan, trailer)
NOT_EVALUATED = {29, 30}
#: largest Cityscapes label id (license plate); -1 is stored as 65535 in no official file
MAX_LABEL_ID = 33
IMAGE_SUFFIX = "_leftImg8bit.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def _annotations(instance_file: Path, image_id: int, next_id: int) -> list[dict[str, Any]]:
    ids = np.asarray(Image.open(instance_file)).astype(np.int64)
    if ids.ndim != 2:
        raise DataError(f"{instance_file}: an instanceIds image has one channel, got shape {ids.shape}")
    out = []
    for value in np.unique(ids):
        label = int(value // 1000) if value >= 1000 else int(value)
        if label > MAX_LABEL_ID:
            raise DataError(f"{instance_file}: pixel value {int(value)} names label id {label}, which Cityscapes does "
                            f"not have (ids 0..{MAX_LABEL_ID}); is this a gtFine_instanceIds.png?")
        if label not in CITYSCAPES_CLASSES:
            continue  # no instances (road, sky, ...), unlabeled, or not evaluated (caravan, trailer)
        mask = np.asfortranarray((ids == value).astype(np.uint8))
        rle = mask_utils.encode(mask)
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"id": next_id + len(out), "image_id": image_id, "category_id": label,
                    "iscrowd": int(value < 1000), "area": float(mask_utils.area(rle)),
                    "bbox": [float(v) for v in mask_utils.toBbox(rle)], "segmentation": rle})
    return out


def convert_split(root: Path, split: str) -> dict[str, Any]:
    """The COCO dict of one split (``train``, ``val``, ``test``) of a Cityscapes folder."""
    image_root, gt_root = root / "leftImg8bit" / split, root / "gtFine" / split
    if not image_root.is_dir():
        raise DataError(f"Cityscapes split {split}: folder {image_root} does not exist (expected "
                        "leftImg8bit/<split>/<city>/*_leftImg8bit.png under the dataset root)")
    images, annotations = [], []
    for image_file in sorted(image_root.glob(f"*/*{IMAGE_SUFFIX}")):
        city, stem = image_file.parent.name, image_file.name[: -len(IMAGE_SUFFIX)]
        instance_file = gt_root / city / f"{stem}{INSTANCE_SUFFIX}"
        if not instance_file.is_file():
            raise DataError(f"Cityscapes: {instance_file} (the instances of {image_file.name}) does not exist")
        width, height = Image.open(image_file).size
        with Image.open(instance_file) as gt:
            if gt.size != (width, height):
                raise DataError(f"{instance_file} is {gt.size[0]}x{gt.size[1]} but its image {image_file} is "
                                f"{width}x{height}")
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"{city}/{image_file.name}", "width": width, "height": height,
                       "seg_file_name": f"{city}/{stem}_gtFine_labelIds.png"})
        annotations += _annotations(instance_file, image_id, len(annotations) + 1)
    if not images:
        raise DataError(f"Cityscapes split {split}: no *{IMAGE_SUFFIX} files under {image_root}/<city>/")
    categories = [{"id": cid, "name": name} for cid, name in CITYSCAPES_CLASSES.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def convert_cityscapes(root: str | Path, out_dir: str | Path, splits: Sequence[str] = ("train", "val")) -> list[Path]:
    """Write ``out_dir/instancesonly_filtered_gtFine_<split>.json`` for each split; return the files."""
    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for split in splits:
        path = out_dir / f"instancesonly_filtered_gtFine_{split}.json"
        path.write_text(json.dumps(convert_split(root, split)))
        written.append(path)
    return written
