"""The manual's middle annotation format (`003` §2.4.1), stored as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detcore.data.datasets.base import DetDataset, make_ann
from detcore.data.datasets.problems import read_json
from detcore.errors import DataError

RECORD_KEYS = ("filename", "width", "height")


class MiddleFormatDataset(DetDataset):
    """A JSON list of ``{filename, width, height, ann: {bboxes, labels, bboxes_ignore?, labels_ignore?}}``.

    Boxes are XYXY pixels; labels are 0-based indices into ``classes``. The file may also be an
    object ``{"classes": [...], "images": [...]}``; otherwise ``classes`` must be given. ``ann``
    may be absent in ``test_mode``. The image id is the record's ``id`` if present, else its index.
    """

    def load_annotations(self) -> list[dict[str, Any]]:
        data = read_json(self.ann_file)
        file_classes = None
        if isinstance(data, dict):
            file_classes, data = data.get("classes"), data.get("images")
        if not isinstance(data, list):
            raise DataError(
                f"{self.ann_file}: the middle format is a JSON list of image records "
                "(or an object with 'classes' and 'images')"
            )
        classes = self.requested_classes if self.requested_classes is not None else file_classes
        if not classes:
            raise DataError(f"{self.ann_file}: give the dataset classes=[...] (labels index into it)")
        self.classes = [str(c) for c in classes]
        self.cat_ids = list(range(len(self.classes)))
        records, seen = [], set()
        for i, raw in enumerate(data):
            record = self._record(i, raw, seen)
            if record is not None:
                records.append(record)
        return records

    def _record(self, index: int, raw: Any, seen: set) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.report.add(f"record #{index} is not an object")
            return None
        name = f"record #{index} ({raw.get('filename', '?')})"
        required = RECORD_KEYS + (() if self.test_mode else ("ann",))
        missing = [k for k in required if k not in raw]
        if missing:
            self.report.add(f"{name}: missing key(s) {missing}")
            return None
        img_id = raw.get("id", index)
        if img_id in seen:
            self.report.add(f"{name}: duplicate image id {img_id}")
            return None
        seen.add(img_id)
        width, height = raw["width"], raw["height"]
        ann_raw = raw.get("ann", {"bboxes": [], "labels": []})
        if not isinstance(ann_raw, dict) or "bboxes" not in ann_raw or "labels" not in ann_raw:
            self.report.add(f"{name}: 'ann' needs 'bboxes' and 'labels'")
            return None
        kept = self._objects(name, ann_raw.get("bboxes"), ann_raw.get("labels"), width, height)
        ignore_labels = ann_raw.get("labels_ignore")
        if ignore_labels is None:
            ignore_labels = [-1] * len(ann_raw.get("bboxes_ignore") or [])
        ignored = self._objects(name + " ignore", ann_raw.get("bboxes_ignore") or [], ignore_labels, width, height,
                                allow_unlabelled=True)
        if kept is None or ignored is None:
            return None
        return {
            "img_id": img_id,
            "file_name": raw["filename"],
            "filename": str(Path(self.img_prefix) / raw["filename"]),
            "width": width,
            "height": height,
            "ann": make_ann([b for b, _ in kept], [l for _, l in kept], [b for b, _ in ignored], [l for _, l in ignored]),
        }

    def _objects(
        self, name: str, boxes: Any, labels: Any, width: int, height: int, allow_unlabelled: bool = False
    ) -> list[tuple[list[float], int]] | None:
        try:
            box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            label_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError):
            self.report.add(f"{name}: bboxes must be (n, 4) numbers and labels (n,) integers")
            return None
        if len(box_arr) != len(label_arr):
            self.report.add(f"{name}: {len(box_arr)} boxes but {len(label_arr)} labels")
            return None
        out = []
        for k, (box, label) in enumerate(zip(box_arr.tolist(), label_arr.tolist())):
            if not (0 <= label < len(self.classes) or (allow_unlabelled and label == -1)):
                self.report.add(f"{name} box {k}: label {label} is not in 0..{len(self.classes) - 1}")
                continue
            checked = self.report.check_box(box, width, height, f"{name} box {k}")
            if checked is not None:
                out.append((checked, label))
        return out
