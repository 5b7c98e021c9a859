"""Tiny synthetic datasets in the official layouts of PASCAL VOC, WIDER FACE, Cityscapes and LVIS, drawn with
the shapes generator (:mod:`detcore.data.shapes`): tests and first runs of a config need no download.

Each writer returns the root it filled; the images' objects are the shapes' (their boxes and masks are exact),
named with the target dataset's class names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.data.shapes import render_image

#: shapes category id -> the class name each layout gives it
VOC_NAMES = {1: "tvmonitor", 2: "car", 3: "dog"}
CITYSCAPES_IDS = {1: 26, 2: 24, 3: 33}  # car, person, bicycle (Cityscapes label ids)


def _scenes(num: int, size: int, seed: int) -> list[tuple[np.ndarray, list[dict[str, Any]]]]:
    rng = np.random.default_rng(seed)
    return [render_image(rng, size) for _ in range(num)]


def _xyxy(obj: dict[str, Any]) -> list[float]:
    x, y, w, h = obj["bbox"]
    return [x, y, x + w, y + h]


def voc_xml(folder: str, filename: str, size: int, objects: Sequence[tuple[str, list[float], int]]) -> str:
    """A PASCAL VOC annotation file: ``objects`` are (name, [x1, y1, x2, y2], difficult)."""
    parts = [f"<annotation><folder>{escape(folder)}</folder><filename>{escape(filename)}</filename>",
             f"<size><width>{size}</width><height>{size}</height><depth>3</depth></size>"]
    for name, (x1, y1, x2, y2), difficult in objects:
        parts.append(f"<object><name>{escape(name)}</name><pose>Unspecified</pose><truncated>0</truncated>"
                     f"<difficult>{difficult}</difficult><bndbox><xmin>{x1:g}</xmin><ymin>{y1:g}</ymin>"
                     f"<xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>\n"


def make_voc(root: str | Path, years: Sequence[str] = ("VOC2007", "VOC2012"),
             splits: dict[str, int] | None = None, size: int = 96, seed: int = 0) -> Path:
    """``root/VOCdevkit/<year>/{Annotations, JPEGImages, ImageSets/Main/<split>.txt}``; the last object of
    every third image is marked difficult."""
    splits = splits or {"trainval": 4, "test": 2}
    devkit = Path(root) / "VOCdevkit"
    for y, year in enumerate(years):
        base = devkit / year
        for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        index = 0
        for s, (split, num) in enumerate(splits.items()):
            ids = []
            for img, objects in _scenes(num, size, seed + 101 * y + 7 * s):
                img_id = f"{year[-4:]}_{index:06d}"
                index += 1
                ids.append(img_id)
                Image.fromarray(img).save(base / "JPEGImages" / f"{img_id}.jpg", quality=95)
                rows = [(VOC_NAMES[o["category_id"]], _xyxy(o), int(k == len(objects) - 1 and index % 3 == 0))
                        for k, o in enumerate(objects)]
                (base / "Annotations" / f"{img_id}.xml").write_text(voc_xml(year, f"{img_id}.jpg", size, rows))
            (base / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return devkit


def make_wider_face(root: str | Path, splits: dict[str, int] | None = None, size: int = 96, seed: int = 0) -> Path:
    """``root/WIDERFace/{train.txt, val.txt, WIDER_<split>/<event>/<id>.jpg, WIDER_<split>/Annotations/<id>.xml}``
    (the VOC-style WIDER FACE annotations), every object named ``face``."""
    splits = splits or {"train": 4, "val": 2}
    base = Path(root) / "WIDERFace"
    events = ("0--Parade", "1--Handshaking")
    for s, (split, num) in enumerate(splits.items()):
        folder = base / f"WIDER_{split}"
        (folder / "Annotations").mkdir(parents=True, exist_ok=True)
        ids = []
        for k, (img, objects) in enumerate(_scenes(num, size, seed + 11 * s)):
            event = events[k % len(events)]
            img_id = f"{event.split('--')[0]}_{event.split('--')[1]}_{split}_{k}"
            ids.append(img_id)
            (folder / event).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(folder / event / f"{img_id}.jpg", quality=95)
            rows = [("face", _xyxy(o), 0) for o in objects]
            (folder / "Annotations" / f"{img_id}.xml").write_text(voc_xml(event, f"{img_id}.jpg", size, rows))
        (base / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return base


def make_cityscapes(root: str | Path, splits: dict[str, int] | None = None, size: int = 96, seed: int = 0,
                    crowd: bool = True) -> Path:
    """``root/cityscapes/{leftImg8bit, gtFine}/<split>/<city>/<city>_<seq>_<frame>_{leftImg8bit,
    gtFine_instanceIds, gtFine_labelIds}.png``: instance ids are ``label_id * 1000 + k`` and, with ``crowd``, the
    last object of each image is a crowd region (its pixels hold the bare label id, as in Cityscapes)."""
    splits = splits or {"train": 3, "val": 2}
    base = Path(root) / "cityscapes"
    cities = ("aachen", "bremen")
    for s, (split, num) in enumerate(splits.items()):
        for k, (img, objects) in enumerate(_scenes(num, size, seed + 13 * s)):
            city = cities[k % len(cities)]
            stem = f"{city}_{k:06d}_{19:06d}"
            image_dir, gt_dir = base / "leftImg8bit" / split / city, base / "gtFine" / split / city
            image_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(image_dir / f"{stem}_leftImg8bit.png")
            instance_ids = np.zeros((size, size), np.uint16)  # 16-bit PNG as in Cityscapes; 0: unlabeled
            label_ids = np.zeros((size, size), np.uint8)
            for n, obj in enumerate(objects):
                rles = mask_utils.frPyObjects(obj["segmentation"], size, size)
                mask = mask_utils.decode(mask_utils.merge(rles)).astype(bool)
                label = CITYSCAPES_IDS[obj["category_id"]]
                is_crowd = crowd and n == len(objects) - 1 and len(objects) > 1
                instance_ids[mask] = label if is_crowd else label * 1000 + n
                label_ids[mask] = label
            Image.fromarray(instance_ids).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
            Image.fromarray(label_ids).save(gt_dir / f"{stem}_gtFine_labelIds.png")
    return base


def make_lvis(root: str | Path, version: str = "v1", num_images: int = 4, size: int = 96, seed: int = 0) -> Path:
    """``root/lvis/{annotations/lvis_<version>_val.json, <images>}``: v1 names images by ``coco_url``
    (``val2017/<id>.jpg``), v0.5 by ``file_name`` in ``val2017/``. Categories carry their ``frequency``
    (r, c, f), images ``neg_category_ids`` and ``not_exhaustive_category_ids``."""
    if version not in ("v0.5", "v1"):
        raise ValueError(f"make_lvis: version must be 'v0.5' or 'v1', got {version!r}")
    base = Path(root) / "lvis"
    (base / "val2017").mkdir(parents=True, exist_ok=True)
    (base / "annotations").mkdir(parents=True, exist_ok=True)
    names = {1: ("rectangle", "f"), 2: ("ellipse", "c"), 3: ("triangle", "r")}
    categories = [{"id": c, "name": n, "synset": f"{n}.n.01", "frequency": f, "image_count": 0, "instance_count": 0}
                  for c, (n, f) in names.items()]
    images, annotations = [], []
    for k, (img, objects) in enumerate(_scenes(num_images, size, seed)):
        image_id = 1000 + k
        file_name = f"{image_id:012d}.jpg"
        Image.fromarray(img).save(base / "val2017" / file_name, quality=95)
        present = sorted({o["category_id"] for o in objects})
        entry = {"id": image_id, "width": size, "height": size,
                 "neg_category_ids": [c for c in names if c not in present][:1], "not_exhaustive_category_ids": []}
        if version == "v1":
            entry["coco_url"] = f"http://images.cocodataset.org/val2017/{file_name}"
        else:
            entry["file_name"] = file_name
        images.append(entry)
        for o in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": o["category_id"],
                                "bbox": o["bbox"], "area": o["area"], "segmentation": o["segmentation"]})
    data = {"images": images, "annotations": annotations, "categories": categories,
            "info": {"version": version}, "licenses": []}
    path = base / "annotations" / f"lvis_{version.replace('.', '_')}_val.json"
    path.write_text(json.dumps(data))
    return base
