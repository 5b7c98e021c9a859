"""PASCAL VOC dataset: an ImageSets list of ids, one XML file per image under ``Annotations/``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from detcore.data.datasets.base import DetDataset, make_ann
from detcore.data.images import read_image_size
from detcore.errors import DataError

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


class VOCDataset(DetDataset):
    """PASCAL VOC: ``ann_file`` lists image ids (e.g. ``VOC2007/ImageSets/Main/trainval.txt``);
    ``img_prefix`` is the year folder holding ``Annotations/<id>.xml`` and ``JPEGImages/<id>.jpg``.

    Boxes are taken as written (MMDetection v2 convention); ``difficult`` objects become ignore
    regions. ``classes`` defaults to the 20 VOC classes, where an unknown object name is an error;
    with an explicit (subset) list, other names are skipped. Labels index ``classes``; ``cat_ids``
    is ``0..K-1``.
    """

    image_suffix = ".jpg"
    #: the classes when the config gives none (their names in the XML files are checked strictly)
    default_classes: tuple[str, ...] = VOC_CLASSES

    def load_annotations(self) -> list[dict[str, Any]]:
        if not self.ann_file.is_file():
            raise DataError(f"image list {self.ann_file} does not exist; check ann_file and data_root")
        ids = [line.strip() for line in self.ann_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        strict = self.requested_classes is None
        self.classes = list(self.default_classes) if strict else list(self.requested_classes)
        self.cat_ids = list(range(len(self.classes)))
        label_of = {name: i for i, name in enumerate(self.classes)}
        seen: set[str] = set()
        records = []
        for img_id in ids:
            if img_id in seen:
                self.report.add(f"image id {img_id} is listed twice")
                continue
            seen.add(img_id)
            record = self._parse(img_id, label_of, strict)
            if record is not None:
                records.append(record)
        return records

    def image_file_name(self, img_id: str, root: ET.Element) -> str:
        """The image of ``img_id`` relative to ``img_prefix`` (WIDER FACE reads the XML's ``<folder>``)."""
        return f"JPEGImages/{img_id}{self.image_suffix}"

    def _parse(self, img_id: str, label_of: dict[str, int], strict: bool) -> dict[str, Any] | None:
        xml_path = Path(self.img_prefix) / "Annotations" / f"{img_id}.xml"
        if not xml_path.is_file():
            self.report.add(f"image {img_id}: annotation {xml_path} does not exist")
            return None
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as exc:
            self.report.add(f"image {img_id}: {xml_path} is not valid XML ({exc})")
            return None
        file_name = self.image_file_name(img_id, root)
        image_path = Path(self.img_prefix) / file_name
        size = root.find("size")
        if size is not None and size.findtext("width") and size.findtext("height"):
            width, height = int(float(size.findtext("width"))), int(float(size.findtext("height")))
        elif image_path.is_file():
            width, height = read_image_size(image_path)
        else:
            self.report.add(f"image {img_id}: {xml_path} has no <size> and {image_path} does not exist")
            return None
        boxes, labels, ignore_boxes, ignore_labels = [], [], [], []
        for k, obj in enumerate(root.findall("object")):
            where = f"image {img_id} ({xml_path.name}) object {k}"
            name = (obj.findtext("name") or "").strip()
            if name not in label_of:
                if strict:
                    self.report.add(f"{where}: class {name!r} is not one of the dataset's classes")
                continue
            bnd = obj.find("bndbox")
            try:
                box = [float(bnd.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
            except (AttributeError, TypeError, ValueError):
                self.report.add(f"{where}: <bndbox> needs numeric xmin, ymin, xmax, ymax")
                continue
            box = self.report.check_box(box, width, height, where)
            if box is None:
                continue
            difficult = int(obj.findtext("difficult") or 0)
            (ignore_boxes if difficult else boxes).append(box)
            (ignore_labels if difficult else labels).append(label_of[name])
        return {
            "img_id": img_id,
            "file_name": file_name,
            "filename": str(image_path),
            "width": width,
            "height": height,
            "ann": make_ann(boxes, labels, ignore_boxes, ignore_labels),
        }
