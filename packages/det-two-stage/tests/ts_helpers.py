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


