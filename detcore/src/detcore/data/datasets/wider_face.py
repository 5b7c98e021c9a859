"""WIDER FACE in its VOC-style layout (Yang et al., "WIDER FACE: A Face Detection Benchmark", CVPR 2016; the
seeds' WIDER Face section): ``train.txt`` / ``val.txt`` list image ids, ``WIDER_<split>/Annotations/<id>.xml``
hold the boxes and the event ``<folder>``, images are ``WIDER_<split>/<folder>/<id>.jpg``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from detcore.data.datasets.voc import VOCDataset


class WIDERFaceDataset(VOCDataset):
    """One class, ``face``. ``ann_file`` is ``train.txt`` / ``val.txt``; ``img_prefix`` is ``WIDER_train/`` or
    ``WIDER_val/``. An XML file without ``<folder>`` is reported with the file's name."""

    default_classes = ("face",)

    def image_file_name(self, img_id: str, root: ET.Element) -> str:
        folder = (root.findtext("folder") or "").strip()
        if not folder:
            self.report.add(f"image {img_id}: Annotations/{img_id}.xml has no <folder> (the event folder of the image)")
            return f"{img_id}{self.image_suffix}"
        return f"{folder}/{img_id}{self.image_suffix}"
