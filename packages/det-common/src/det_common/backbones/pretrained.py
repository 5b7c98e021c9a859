"""Loading a user-supplied backbone state dict from a file (never downloaded)."""

from __future__ import annotations

import logging
import os
from typing import NamedTuple

import torch
from torch import nn

logger = logging.getLogger(__name__)


class LoadReport(NamedTuple):
    """Keys of the model the file did not provide, and keys of the file the model does not have."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def load_pretrained(module: nn.Module, path: str | os.PathLike[str], prefix: str = "") -> LoadReport:
    """Load weights into ``module`` from a file saved with ``torch.save``, logging key mismatches.

    Accepts a bare state dict or a checkpoint ``{"state_dict": ...}``; keys that start with
    ``prefix`` (e.g. "backbone.") are stripped of it first. Loaded with ``weights_only=True``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TypeError(f"{path}: expected a state dict, got {type(state).__name__}")
    if prefix:
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        state = stripped if stripped else state
    result = module.load_state_dict(state, strict=False)
    report = LoadReport(list(result.missing_keys), list(result.unexpected_keys))
    if report.missing_keys:
        logger.warning("%s: %d keys missing from %s: %s", type(module).__name__, len(report.missing_keys), path,
                       ", ".join(report.missing_keys))
    if report.unexpected_keys:
        logger.warning("%s: %d unexpected keys in %s: %s", type(module).__name__, len(report.unexpected_keys), path,
                       ", ".join(report.unexpected_keys))
    return report
