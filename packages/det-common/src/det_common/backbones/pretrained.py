"""Loading backbone weights: a state-dict file, or ImageNet weights by name (``torchvision://resnet50``).

Names go through torchvision's weights API (``torchvision.models.get_model_weights``) with MMDetection's
choice of weights (``IMAGENET1K_V1``, the weights behind its ``torchvision://`` names): the file is read from
torch's hub cache (``$TORCH_HOME/hub/checkpoints``, see ``torch.hub.get_dir()``) when it is there, else
downloaded into it, unless ``DETCORE_OFFLINE=1``; when it can be neither, the error names the file to place
and the folder to place it in.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

logger = logging.getLogger(__name__)

TORCHVISION_SCHEME = "torchvision://"
#: torchvision weights MMDetection's ``torchvision://`` names stand for
DEFAULT_WEIGHTS = "IMAGENET1K_V1"


def torchvision_weights(name: str) -> Any:
    """The torchvision weights enum member of a ``torchvision://`` model name (``resnet50``, ``vgg16_bn``, ...)."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError) as exc:
        known = sorted(n for n in torchvision.models.list_models(module=torchvision.models)
                       if n.startswith(("resnet", "resnext", "wide_resnet", "vgg")))
        raise ValueError(f"pretrained {TORCHVISION_SCHEME}{name}: torchvision has no model {name!r}; "
                         f"backbone names: {', '.join(known)}") from exc
    return weights[DEFAULT_WEIGHTS] if DEFAULT_WEIGHTS in weights.__members__ else weights.DEFAULT


def cached_weights_file(name: str) -> Path:
    """Where torch's hub cache keeps the ImageNet weights of ``torchvision://name``."""
    url = torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet weights of ``torchvision://name`` from the hub cache (downloaded there first when allowed)."""
    weights = torchvision_weights(name)
    path = cached_weights_file(name)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    reason = "DETCORE_OFFLINE is set"
    if os.environ.get("DETCORE_OFFLINE", "") in ("", "0"):
        try:
            return weights.get_state_dict(progress=True)
        except Exception as exc:  # no network, proxy, disk full: all end in the same advice
            reason = f"download failed: {type(exc).__name__}: {exc}"
    raise FileNotFoundError(
        f"pretrained {TORCHVISION_SCHEME}{name}: the ImageNet weights file {path.name} is not in torch's hub cache "
        f"and was not downloaded ({reason}). Place the file {weights.url} at {path} (folder {path.parent}; "
        "TORCH_HOME moves it), or set the backbone's pretrained to a local .pth file."
    )


class LoadReport(NamedTuple):
    """Keys of the model the file did not provide, and keys of the file the model does not have."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def load_pretrained(module: nn.Module, path: str | os.PathLike[str], prefix: str = "") -> LoadReport:
    """Load weights into ``module`` from a file saved with ``torch.save`` or a ``torchvision://`` name,
    logging key mismatches (a classifier's ``fc.*`` / ``classifier.*`` are reported as unexpected).

    Accepts a bare state dict or a checkpoint ``{"state_dict": ...}``; keys that start with
    ``prefix`` (e.g. "backbone.") are stripped of it first. Loaded with ``weights_only=True``.
    """
    if str(path).startswith(TORCHVISION_SCHEME):
        state = torchvision_state_dict(str(path)[len(TORCHVISION_SCHEME):])
    elif "://" in str(path):
        raise ValueError(f"pretrained {path}: only {TORCHVISION_SCHEME}NAME names and local files are supported")
    elif not os.path.isfile(path):
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    else:
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
