"""COCO-format detection / instance-segmentation dataset, indexed with pycocotools."""

from __future__ import annotations

import contextlib
import io
from numbers import Real
from pathlib import Path
from typing import Any

from pycocotools.coco import COCO

from detcore.data.datasets.base import DetDataset, make_ann
from detcore.data.datasets.problems import read_json
from detcore.errors import DataError

IMAGE_KEYS = ("id", "file_name", "width", "height")
ANNOTATION_KEYS = ("image_id", "category_id", "bbox")


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


class CocoDataset(DetDataset):
    """A COCO annotation file (``images``, ``annotations``, ``categories``) and its image folder.

    Boxes are converted from xywh to xyxy; category ids (possibly non-contiguous) map to labels
    ``0..K-1`` in ``cat_ids`` order. ``classes`` (names) selects and orders a subset of the
    categories; by default every category, sorted by id. Crowd annotations (``iscrowd=1``) and
    those flagged ``ignore`` become ignore regions. Polygon and RLE segmentations are kept for
    ``LoadAnnotations(with_mask=True)``; each image's semantic map (``with_seg=True``) is
    ``seg_prefix / <file_name stem><seg_suffix>``. ``coco`` is the pycocotools index used by the metric;
    missing ``area`` / ``iscrowd`` fields are filled in it (box area, 0).
    """

    coco: COCO

    def read_annotation_file(self) -> Any:
        """The annotation file's JSON (LVIS overrides it to fill in image file names)."""
        return read_json(self.ann_file)

    def load_annotations(self) -> list[dict[str, Any]]:
        data = self.read_annotation_file()
        report = self.report
        if not isinstance(data, dict):
            raise DataError(f"{self.ann_file}: a COCO file is a JSON object with 'images' and 'categories'")
        for key in ("images", "categories") + (() if self.test_mode else ("annotations",)):
            if not isinstance(data.get(key), list):
                report.add(f"top-level key '{key}' is missing or not a list")
        report.raise_if_any()
        data.setdefault("annotations", [])

        categories = self._check_categories(data["categories"])
        images = self._check_images(data["images"])
        self._choose_classes(categories)
        per_image = self._check_annotations(data["annotations"], images, categories)
        report.raise_if_any()

        for ann in data["annotations"]:
            ann.setdefault("iscrowd", 0)
            if "area" not in ann:
                ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
        data.setdefault("info", {})
        data.setdefault("licenses", [])
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()

        return [self._record(img, per_image.get(img["id"], [])) for img in data["images"]]

    # -- validation ---------------------------------------------------------------------------
    def _check_categories(self, categories: list) -> dict[int, str]:
        out: dict[int, str] = {}
        for i, cat in enumerate(categories):
            if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
                self.report.add(f"categories[{i}] needs 'id' and 'name'")
            elif cat["id"] in out:
                self.report.add(f"category id {cat['id']} is listed twice")
            else:
                out[cat["id"]] = str(cat["name"])
        return out

    def _check_images(self, images: list) -> dict[Any, dict]:
        out: dict[Any, dict] = {}
        for i, img in enumerate(images):
            if not isinstance(img, dict):
                self.report.add(f"images[{i}] is not an object")
                continue
            missing = [k for k in IMAGE_KEYS if k not in img]
            name = f"image {img.get('id', f'#{i}')} ({img.get('file_name', '?')})"
            if missing:
                self.report.add(f"{name}: missing key(s) {missing}")
                continue
            if not (isinstance(img["width"], int) and isinstance(img["height"], int)) or min(
                img["width"], img["height"]
            ) <= 0:
                self.report.add(f"{name}: width/height must be positive integers, got {img['width']}x{img['height']}")
                continue
            if img["id"] in out:
                self.report.add(f"duplicate image id {img['id']} ({out[img['id']]['file_name']} and {img['file_name']})")
                continue
            out[img["id"]] = img
        return out

    def _choose_classes(self, categories: dict[int, str]) -> None:
        if self.requested_classes is None:
            self.cat_ids = sorted(categories)
        else:
            by_name = {name: cid for cid, name in categories.items()}
            unknown = [c for c in self.requested_classes if c not in by_name]
            if unknown:
                raise DataError(
                    f"{self.ann_file}: classes {unknown} are not categories of this file; "
                    f"available: {sorted(by_name)}"
                )
            self.cat_ids = [by_name[c] for c in self.requested_classes]
        self.classes = [categories[cid] for cid in self.cat_ids]
        self.cat2label = {cid: i for i, cid in enumerate(self.cat_ids)}

    def _check_annotations(
        self, annotations: list, images: dict[Any, dict], categories: dict[int, str]
    ) -> dict[Any, list[tuple[list[float], int, bool, Any]]]:
        """Per image id: (xyxy box, label, is_ignore, segmentation) of each kept annotation."""
        per_image: dict[Any, list] = {}
        for i, ann in enumerate(annotations):
            if not isinstance(ann, dict):
                self.report.add(f"annotations[{i}] is not an object")
                continue
            where = f"annotation {ann.get('id', f'#{i}')} of image {ann.get('image_id', '?')}"
            missing = [k for k in ANNOTATION_KEYS if k not in ann]
            if missing:
                self.report.add(f"{where}: missing key(s) {missing}")
                continue
            img = images.get(ann["image_id"])
            if img is None:
                self.report.add(f"{where}: image id {ann['image_id']} is not in 'images'")
                continue
            if ann["category_id"] not in categories:
                self.report.add(f"{where}: category id {ann['category_id']} is not in 'categories'")
                continue
            bbox = ann["bbox"]
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                self.report.add(f"{where}: bbox must be [x, y, w, h] numbers, got {bbox!r}")
                continue
            segm = ann.get("segmentation")
            if segm is not None and not self._segmentation_ok(segm, img, where):
                continue
            label = self.cat2label.get(ann["category_id"])
            if label is None:  # a category outside the requested classes
                continue
            x, y, w, h = (float(v) for v in bbox)
            box = self.report.check_box([x, y, x + w, y + h], img["width"], img["height"], where)
            if box is None:
                continue
            is_ignore = bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", False))
            per_image.setdefault(ann["image_id"], []).append((box, label, is_ignore, segm))
        return per_image

    def _segmentation_ok(self, segm: Any, img: dict, where: str) -> bool:
        if isinstance(segm, list):
            for poly in segm:
                if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(_is_number(v) for v in poly):
                    self.report.add(f"{where}: a polygon needs an even number (>= 6) of coordinates")
                    return False
            return True
        if isinstance(segm, dict):
            if "counts" not in segm or "size" not in segm:
                self.report.add(f"{where}: an RLE segmentation needs 'counts' and 'size'")
                return False
            if list(segm["size"]) != [img["height"], img["width"]]:
                self.report.add(
                    f"{where}: RLE size {segm['size']} differs from the image's [height, width] "
                    f"[{img['height']}, {img['width']}]"
                )
                return False
            return True
        self.report.add(f"{where}: segmentation must be a polygon list or an RLE object")
        return False

    def _record(self, img: dict, objects: list[tuple[list[float], int, bool, Any]]) -> dict[str, Any]:
        kept = [o for o in objects if not o[2]]
        ignored = [o for o in objects if o[2]]
        ann = make_ann([o[0] for o in kept], [o[1] for o in kept], [o[0] for o in ignored], [o[1] for o in ignored])
        if all(o[3] is not None for o in kept):
            ann["masks"] = [o[3] for o in kept]
        ann["seg_map"] = str(Path(img["file_name"]).with_suffix(self.seg_suffix))
        return {
            "img_id": img["id"],
            "file_name": img["file_name"],
            "filename": str(Path(self.img_prefix) / img["file_name"]),
            "width": img["width"],
            "height": img["height"],
            "ann": ann,
        }
