"""Cityscapes instance-level data (Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene Understanding",
CVPR 2016) as COCO-format files written by ``detcore convert-dataset cityscapes``: eight classes with instances,
crowd regions as ignore regions. Evaluated with COCO box / mask AP (``CocoMetric``), as the seeds' Cityscapes
section describes for ``bbox`` and ``segm``."""

from __future__ import annotations

from typing import Any

from detcore.data.datasets.coco import CocoDataset

#: Cityscapes label id -> name of the classes with instances that are evaluated (caravan and trailer are not)
CITYSCAPES_CLASSES = {24: "person", 25: "rider", 26: "car", 27: "truck", 28: "bus", 31: "train", 32: "motorcycle",
                      33: "bicycle"}


class CityscapesDataset(CocoDataset):
    """``ann_file``: ``annotations/instancesonly_filtered_gtFine_<split>.json``; ``img_prefix``:
    ``leftImg8bit/<split>/``. ``classes`` defaults to the eight evaluated classes; in training, images whose
    objects are all crowd regions are dropped (``filter_empty_gt``)."""

    def load_annotations(self) -> list[dict[str, Any]]:
        if self.requested_classes is None:
            self.requested_classes = list(CITYSCAPES_CLASSES.values())
        return super().load_annotations()
