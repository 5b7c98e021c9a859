"""DeepFashion In-shop clothes with instance masks (Liu et al., "DeepFashion: Powering Robust Clothes Recognition
and Retrieval with Rich Annotations", CVPR 2016; the seeds' DeepFashion section) in COCO format."""

from __future__ import annotations

from typing import Any

from detcore.data.datasets.coco import CocoDataset

DEEPFASHION_CLASSES = ("top", "skirt", "leggings", "dress", "outer", "pants", "bag", "neckwear", "headwear",
                       "eyeglass", "belt", "footwear", "hair", "skin", "face")


class DeepFashionDataset(CocoDataset):
    """``annotations/DeepFashion_segmentation_{query,gallery}.json`` and the ``Img/`` folder; the 15 classes by
    default (an annotation file missing one of them is an error naming the file)."""

    def load_annotations(self) -> list[dict[str, Any]]:
        if self.requested_classes is None:
            self.requested_classes = list(DEEPFASHION_CLASSES)
        return super().load_annotations()
