"""Shared synthetic data for the data tests: a tiny shapes dataset and COCO-file writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from detcore.data.shapes import make_shapes


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    make_shapes(out, num_train=16, num_val=4, size=96, seed=3)
    return out


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_coco(root: Path, images: list[dict], annotations: list[dict], categories: list[dict],
               name: str = "ann.json", make_files: bool = True) -> Path:
    """Write a COCO file under ``root`` and (optionally) random images for its entries."""
    if make_files:
        for k, img in enumerate(images):
            if {"file_name", "width", "height"} <= img.keys():
                write_image(root / "img" / img["file_name"], img["width"], img["height"], seed=k)
    path = root / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def ann(ann_id: int, image_id: Any, cat: int, bbox: list[float], **extra: Any) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": cat, "bbox": bbox, **extra}


@pytest.fixture(scope="session")
def shapes_seg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shapes of ``shapes_dir`` (fewer) with semantic maps (``stuffthingmaps/{train,val}``)."""
    out = tmp_path_factory.mktemp("shapes_seg")
    make_shapes(out, num_train=8, num_val=2, size=96, seed=3, with_seg=True)
    return out
