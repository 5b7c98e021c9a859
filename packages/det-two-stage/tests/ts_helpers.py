"""Shared test helpers for det-two-stage: config paths, model building, synthetic images and batches."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

import det_two_stage
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

CONFIG_DIR = Path(det_two_stage.__file__).parent / "configs"
MODEL_DIR = CONFIG_DIR / "_base_" / "models"


def model_cfg(name: str, overrides: tuple[str, ...] = ()) -> dict:
    """The ``model`` table of a model base config (``_base_/models/NAME.toml``)."""
    return load_config(MODEL_DIR / f"{name}.toml", overrides)["model"]


def build_model(name: str, overrides: tuple[str, ...] = (), inference_only: bool = False) -> torch.nn.Module:
    """Build a model base config; ``inference_only`` drops ``train_cfg`` (no assigners / samplers)."""
    cfg = model_cfg(name, overrides)
    if inference_only:
        cfg.pop("train_cfg", None)
    return build("detectors", cfg)


def smooth_images(num: int, height: int, width: int, generator: torch.Generator) -> Tensor:
    """Images with structure at several scales (upsampled noise) plus fine noise, roughly zero-mean."""
    coarse = torch.randn(num, 3, max(height // 32, 2), max(width // 32, 2), generator=generator)
    mid = torch.randn(num, 3, max(height // 8, 2), max(width // 8, 2), generator=generator)
    up = torch.nn.functional.interpolate
    images = up(coarse, size=(height, width), mode="bilinear", align_corners=False) * 1.5
    images += up(mid, size=(height, width), mode="bilinear", align_corners=False) * 0.5
    images += torch.randn(num, 3, height, width, generator=generator) * 0.1
    return images


def metas_for(images: Tensor) -> list[ImageMeta]:
    height, width = images.shape[-2:]
    return [ImageMeta(ori_shape=(height, width), img_shape=(height, width), pad_shape=(height, width))] * images.shape[0]


def synthetic_batch(generator: torch.Generator, num_images: int = 2, size: tuple[int, int] = (128, 160),
                    num_classes: int = 3, with_masks: bool = False) -> Batch:
    """Bright rectangles (class = colour channel) on a dark background, with their boxes (and masks) as ground truth."""
    height, width = size
    images = torch.randn(num_images, 3, height, width, generator=generator) * 0.05
    gts = []
    for i in range(num_images):
        boxes, labels = [], []
        for _ in range(3):
            w = int(torch.randint(24, 64, (1,), generator=generator))
            h = int(torch.randint(24, 64, (1,), generator=generator))
            x = int(torch.randint(0, width - w, (1,), generator=generator))
            y = int(torch.randint(0, height - h, (1,), generator=generator))
            label = int(torch.randint(0, num_classes, (1,), generator=generator))
            images[i, label % 3, y : y + h, x : x + w] += 2.0
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
        gt = Instances((height, width), boxes=torch.tensor(boxes, dtype=torch.float32),
                       labels=torch.tensor(labels, dtype=torch.long))
        if with_masks:
            masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
            for k, (x1, y1, x2, y2) in enumerate(boxes):
                masks[k, y1:y2, x1:x2] = True
            gt.masks = masks
        gts.append(gt)
    return Batch(images=images, metas=metas_for(images), gt=gts)
