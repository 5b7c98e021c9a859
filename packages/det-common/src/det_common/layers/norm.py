"""Normalization layers built from a config table: BN, SyncBN, GN, FrozenBN, LN, IN."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

# type -> (abbreviation used in parameter names, e.g. "bn1" / "gn", layer class)
NORM_LAYERS: dict[str, tuple[str, type[nn.Module]]] = {
    "BN": ("bn", nn.BatchNorm2d),
    "BN2d": ("bn", nn.BatchNorm2d),
    "BN1d": ("bn", nn.BatchNorm1d),
    "SyncBN": ("bn", nn.SyncBatchNorm),
    "FrozenBN": ("bn", FrozenBatchNorm2d),
    "GN": ("gn", nn.GroupNorm),
    "LN": ("ln", nn.LayerNorm),
    "IN": ("in", nn.InstanceNorm2d),
}


def build_norm_layer(
    cfg: Mapping[str, Any], num_features: int, postfix: int | str = ""
) -> tuple[str, nn.Module]:
    """Build the norm of ``cfg["type"]``; returns (name, layer) with name e.g. "bn", "bn1", "gn".

    ``requires_grad`` (default True) freezes the affine parameters when False; GN needs
    ``num_groups``; other keys (eps, momentum, ...) go to the layer's constructor.
    """
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise TypeError(f"build_norm_layer: cfg must be a mapping with a 'type', got {cfg!r}")
    kwargs = dict(cfg)
    norm_type = kwargs.pop("type")
    if norm_type not in NORM_LAYERS:
        raise KeyError(f"build_norm_layer: unknown norm type {norm_type!r}; known: {sorted(NORM_LAYERS)}")
    abbr, layer_cls = NORM_LAYERS[norm_type]
    requires_grad = kwargs.pop("requires_grad", True)
    if norm_type == "GN":
        if "num_groups" not in kwargs:
            raise KeyError("build_norm_layer: GN needs 'num_groups'")
        layer = nn.GroupNorm(num_channels=num_features, **kwargs)
    elif norm_type == "LN":
        layer = nn.LayerNorm(num_features, **kwargs)
    else:
        layer = layer_cls(num_features, **kwargs)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return f"{abbr}{postfix}", layer


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is one of the normalization layers above."""
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, FrozenBatchNorm2d))
