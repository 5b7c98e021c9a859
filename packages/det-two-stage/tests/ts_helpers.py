"""Shared test helpers for det-two-stage: config paths, model building, synthetic images and batches."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

import det_two_stage
from detcore.config import load_config
from detcore.registry import build
from det_common.testing import metas_for, synthetic_batch  # noqa: F401  (shared with other families)

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


@torch.no_grad()
def randomize_faster_rcnn(tv: torch.nn.Module, images: torch.Tensor, generator: torch.Generator) -> None:
    """Seeded random weights with O(1) activations: BatchNorm statistics calibrated on the images,
    RPN outputs of varied objectness, and spread class biases so detections are confident and distinct."""
    for module in tv.backbone.body.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5, generator=generator)
            module.bias.normal_(0.0, 0.2, generator=generator)
            module.momentum = None  # cumulative average: one pass sets the running statistics
            module.reset_running_stats()
    tv.backbone.body.train()
    tv.backbone.body(images)
    head = tv.rpn.head
    head.conv[0][0].weight.normal_(0.0, 0.02, generator=generator)
    head.cls_logits.weight.normal_(0.0, 0.05, generator=generator)
    head.cls_logits.bias.normal_(0.0, 0.5, generator=generator)
    head.bbox_pred.weight.normal_(0.0, 0.02, generator=generator)
    predictor = tv.roi_heads.box_predictor
    predictor.cls_score.weight.normal_(0.0, 0.15, generator=generator)
    predictor.cls_score.bias.copy_(torch.randn(91, generator=generator) * 3.0)
    predictor.cls_score.bias[0] = 1.0
    predictor.bbox_pred.weight.normal_(0.0, 0.02, generator=generator)
    predictor.bbox_pred.bias.normal_(0.0, 0.1, generator=generator)
    tv.eval()


def torchvision_twins(tv_builder, converter, base_config: str, num_images: int, height: int, width: int):
    """(torchvision model with seeded calibrated weights, our model of ``base_config`` with its converted weights,
    images (num_images, 3, height, width)); torchvision's transform leaves these images unchanged."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = smooth_images(num_images, height, width, generator)
    tv = tv_builder(weights=None, weights_backbone=None, min_size=height, max_size=width,
                    image_mean=[0.0] * 3, image_std=[1.0] * 3)
    randomize_faster_rcnn(tv, images, generator)
    converted, unplaced = converter(tv.state_dict())
    assert unplaced == []
    ours = build_model(base_config, inference_only=True)
    ours.load_state_dict(converted, strict=True)
    return tv, ours.eval(), images
