"""LVIS v0.5 and v1 (Gupta et al., "LVIS: A Dataset for Large Vocabulary Instance Segmentation", CVPR 2019): COCO
-like files whose categories carry a frequency (rare / common / frequent) and whose images list the categories
verified absent (``neg_category_ids``) and those not exhaustively annotated. Evaluated by ``LVISMetric``."""

from __future__ import annotations

from typing import Any

from detcore.data.datasets.coco import CocoDataset
from detcore.data.datasets.problems import read_json
from detcore.errors import DataError


class LVISV1Dataset(CocoDataset):
    """LVIS v1: images have no ``file_name`` but a ``coco_url``; the file is its last two path parts
    (``val2017/000000397133.jpg``) under ``img_prefix`` (the folder holding COCO 2017's ``train2017`` and
    ``val2017``)."""

    version = "v1"

    def read_annotation_file(self) -> Any:
        data = read_json(self.ann_file)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise DataError(f"{self.ann_file}: an LVIS file is a JSON object with 'images', 'annotations', 'categories'")
        for i, img in enumerate(data["images"]):
            if isinstance(img, dict) and "file_name" not in img:
                url = img.get("coco_url")
                if not isinstance(url, str) or "/" not in url:
                    raise DataError(f"{self.ann_file}: image {img.get('id', f'#{i}')} has neither 'file_name' nor "
                                    "a 'coco_url' to take it from")
                img["file_name"] = "/".join(url.split("/")[-2:])
        return data


class LVISV05Dataset(LVISV1Dataset):
    """LVIS v0.5: images name their file (``COCO_val2014_...jpg``); ``img_prefix`` is the image folder."""

    version = "v0.5"

    def read_annotation_file(self) -> Any:
        data = super().read_annotation_file()
        for img in data["images"]:
            # v0.5 names COCO 2014 files (COCO_val2014_000000397133.jpg); the images are COCO 2017's
            if isinstance(img, dict) and str(img.get("file_name", "")).startswith("COCO_"):
                img["file_name"] = img["file_name"][-16:]
        return data
