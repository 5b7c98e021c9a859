"""Drawing a pipeline's output (boxes, labels, masks) on its image, to check a data pipeline by eye."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torchvision.io import write_png
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks

from detcore.structures import DetSample

PALETTE = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255), (170, 110, 40),
]


def displayable_image(sample: DetSample) -> torch.Tensor:
    """The sample's image as (3, H, W) uint8 RGB, undoing ``Normalize`` when it was applied."""
    image = sample.image.detach().cpu().to(torch.float32)
    norm = sample.meta.extra.get("img_norm_cfg")
    if norm is not None:
        mean = torch.tensor(norm["mean"]).view(3, 1, 1)
        std = torch.tensor(norm["std"]).view(3, 1, 1)
        image = image * std + mean
        if not norm.get("to_rgb", True):
            image = image.flip(0)
    return image.round().clamp(0, 255).to(torch.uint8)


def draw_sample(sample: DetSample, classes: Sequence[str] = ()) -> torch.Tensor:
    """(3, H, W) uint8 image with ground-truth masks, boxes and class names drawn on it.

    Ignore regions are drawn as thin grey boxes.
    """
    image = displayable_image(sample)
    gt = sample.gt
    if gt is not None and len(gt):
        labels = gt.labels.tolist() if gt.has("labels") else [0] * len(gt)
        colors = [PALETTE[label % len(PALETTE)] for label in labels]
        if gt.has("masks"):
            masks = gt.masks.bool()[:, : image.shape[1], : image.shape[2]]
            image = draw_segmentation_masks(image, masks, alpha=0.45, colors=colors)
        names = [classes[label] if 0 <= label < len(classes) else str(label) for label in labels]
        image = draw_bounding_boxes(image, gt.boxes.float(), labels=names, colors=colors, width=1)
    if sample.ignored is not None and len(sample.ignored):
        image = draw_bounding_boxes(image, sample.ignored.boxes.float(), colors=(128, 128, 128), width=1)
    return image


def save_sample(sample: DetSample, path: str | Path, classes: Sequence[str] = ()) -> Path:
    """Draw ``sample`` and write it as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(draw_sample(sample, classes), str(path))
    return path
