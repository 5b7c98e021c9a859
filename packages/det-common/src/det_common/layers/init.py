"""Weight initialisation helpers used by heads and necks (normal, xavier, constant, focal-loss prior bias)."""

from __future__ import annotations

import math

from torch import nn


def bias_init_with_prob(prior_prob: float) -> float:
    """Bias b with sigmoid(b) = prior_prob (RetinaNet's classification prior, e.g. 0.01)."""
    if not 0.0 < prior_prob < 1.0:
        raise ValueError(f"bias_init_with_prob: prior_prob must be in (0, 1), got {prior_prob}")
    return float(-math.log((1 - prior_prob) / prior_prob))


def normal_init(module: nn.Module, mean: float = 0.0, std: float = 1.0, bias: float = 0.0) -> None:
    """Normal weights and constant bias for a layer with ``weight`` / ``bias``."""
    if getattr(module, "weight", None) is not None:
        nn.init.normal_(module.weight, mean, std)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def constant_init(module: nn.Module, val: float, bias: float = 0.0) -> None:
    """Constant weights and bias."""
    if getattr(module, "weight", None) is not None:
        nn.init.constant_(module.weight, val)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)


def xavier_init(module: nn.Module, gain: float = 1.0, bias: float = 0.0, distribution: str = "uniform") -> None:
    """Xavier (Glorot) weights, uniform or normal, and constant bias."""
    if distribution not in ("uniform", "normal"):
        raise ValueError(f"xavier_init: distribution must be 'uniform' or 'normal', got {distribution!r}")
    if getattr(module, "weight", None) is not None:
        if distribution == "uniform":
            nn.init.xavier_uniform_(module.weight, gain=gain)
        else:
            nn.init.xavier_normal_(module.weight, gain=gain)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, bias)
