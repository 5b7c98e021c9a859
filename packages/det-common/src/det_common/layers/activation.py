"""Activation layers built from a config table (ReLU, LeakyReLU, SiLU, GELU, ...)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "ReLU": nn.ReLU,
    "ReLU6": nn.ReLU6,
    "LeakyReLU": nn.LeakyReLU,
    "PReLU": nn.PReLU,
    "ELU": nn.ELU,
    "SiLU": nn.SiLU,
    "Swish": nn.SiLU,
    "GELU": nn.GELU,
    "Sigmoid": nn.Sigmoid,
    "Tanh": nn.Tanh,
    "HSwish": nn.Hardswish,
    "Hardswish": nn.Hardswish,
    "Hardsigmoid": nn.Hardsigmoid,
    "Mish": nn.Mish,
}

# Activations whose constructor accepts ``inplace``.
INPLACE_CAPABLE = frozenset(
    {"ReLU", "ReLU6", "LeakyReLU", "ELU", "SiLU", "Swish", "HSwish", "Hardswish", "Hardsigmoid", "Mish"}
)


def build_activation_layer(cfg: Mapping[str, Any], inplace: bool | None = None) -> nn.Module:
    """Build the activation of ``cfg["type"]``; ``inplace`` is a default for types that accept it."""
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise TypeError(f"build_activation_layer: cfg must be a mapping with a 'type', got {cfg!r}")
    kwargs = dict(cfg)
    act_type = kwargs.pop("type")
    if act_type not in ACTIVATIONS:
        raise KeyError(f"build_activation_layer: unknown activation {act_type!r}; known: {sorted(ACTIVATIONS)}")
    if inplace is not None and act_type in INPLACE_CAPABLE:
        kwargs.setdefault("inplace", inplace)
    return ACTIVATIONS[act_type](**kwargs)
