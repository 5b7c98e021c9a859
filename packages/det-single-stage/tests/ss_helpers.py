"""Helpers for the family's fast tests: a method's shapes model and a short training run on a synthetic batch."""

from __future__ import annotations

import copy

import torch
from torch import nn

from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Batch, Instances


def shapes_model(config: str, seed: int = 0, loss_weights: dict[str, float] | None = None) -> nn.Module:
    """The detector of a ``*_shapes`` config (small ResNet-18), seeded; ``loss_weights`` overrides the
    ``loss_weight`` of the head's losses by name (e.g. ``{"loss_cls": 0.0}`` to train the other branches only)."""
    cfg = copy.deepcopy(load_config(config)["model"])
    for name, weight in (loss_weights or {}).items():
        cfg["bbox_head"][name]["loss_weight"] = weight
    torch.manual_seed(seed)
    return build("detectors", cfg)


def tiny_batch(seed: int = 0) -> Batch:
    """Two 128x160 images with three coloured rectangles each (``det_common.testing.synthetic_batch``)."""
    return synthetic_batch(torch.Generator().manual_seed(seed))


def without_ground_truth(batch: Batch) -> Batch:
    """The same images with no ground-truth box at all."""
    empty = [Instances(gt.image_size, boxes=gt.boxes[:0], labels=gt.labels[:0]) for gt in batch.gt]
    return Batch(images=batch.images, metas=batch.metas, gt=empty)


def assert_training_reduces_loss(model: nn.Module, batch: Batch, steps: int = 12, lr: float = 0.01,
                                 factor: float = 0.8) -> list[dict[str, float]]:
    """``steps`` SGD steps on ``batch``: every loss finite, the last three totals below ``factor`` x the first three."""
    history = train_steps(model, batch, steps, lr)
    totals = [h["total"] for h in history]
    assert all(torch.isfinite(torch.tensor(totals))), totals
    assert sum(totals[-3:]) < factor * sum(totals[:3]), totals
    return history
