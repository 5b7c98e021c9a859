"""Shared by the family's tests: a shapes config's model built small, and synthetic batches."""

from __future__ import annotations

import copy

import torch

from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Batch, Instances


def build_shapes_model(config: str, **model_overrides) -> torch.nn.Module:
    """The model of a shipped ``*_shapes`` config with top-level model keys replaced, seeded."""
    cfg = copy.deepcopy(dict(load_config(config)["model"]))
    cfg.update(model_overrides)
    torch.manual_seed(0)
    return build("detectors", cfg)


def without_gt(batch: Batch, index: int) -> Batch:
    """The batch with image ``index``'s ground truth removed (an image with no objects)."""
    gts = list(batch.gt)
    gts[index] = Instances(gts[index].image_size, boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    return Batch(images=batch.images, metas=batch.metas, gt=gts)
