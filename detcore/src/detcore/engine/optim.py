"""Optimizer construction with param-wise options, the opt-in linear LR scaling rule, and the gradient step.

``optimizer`` config table::

    type = "SGD"            # entry point of group detcore.optimizers (SGD, Adam, AdamW, ...)
    lr = 0.02
    momentum = 0.9
    weight_decay = 0.0001
    [optimizer.paramwise]   # optional
    norm_decay_mult = 0.0   # weight decay multiplier of normalization-layer weights and biases
    bias_decay_mult = 0.0   # weight decay multiplier of the other biases
    bias_lr_mult = 2.0      # learning-rate multiplier of the other biases
    [optimizer.paramwise.custom_keys]
    backbone = { lr_mult = 0.1, decay_mult = 1.0 }   # parameters whose name contains the key

The longest matching custom key wins and takes precedence over the bias / norm rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import clip_grad_norm_

from detcore.errors import ConfigError

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
PARAMWISE_KEYS = ("norm_decay_mult", "bias_decay_mult", "bias_lr_mult", "custom_keys")


def scale_lr(lr: float, total_batch_size: int, base_batch_size: int) -> float:
    """Linear scaling rule (`003` §2.2): the learning rate grows in proportion to the total batch size."""
    if base_batch_size <= 0:
        raise ConfigError(f"auto_scale_lr.base_batch_size must be positive, got {base_batch_size}")
    return lr * total_batch_size / base_batch_size


def param_groups(
    model: nn.Module, lr: float, weight_decay: float, paramwise: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups sharing (lr, weight_decay) after the param-wise rules.

    Each group carries ``names`` (parameter names) so the grouping can be inspected and logged.
    """
    paramwise = dict(paramwise or {})
    unknown = set(paramwise) - set(PARAMWISE_KEYS)
    if unknown:
        raise ConfigError(
            f"optimizer.paramwise has unknown keys {sorted(unknown)}; allowed: {', '.join(PARAMWISE_KEYS)}"
        )
    custom = dict(paramwise.get("custom_keys", {}))
    for key, value in custom.items():
        if not isinstance(value, Mapping) or set(value) - {"lr_mult", "decay_mult"}:
            raise ConfigError(
                f"optimizer.paramwise.custom_keys.{key} must be a table with lr_mult and/or decay_mult"
            )
    custom_order = sorted(custom, key=len, reverse=True)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, NORM_TYPES)
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            full_name = f"{module_name}.{param_name}" if module_name else param_name
            lr_mult, decay_mult = 1.0, 1.0
            matched = next((k for k in custom_order if k in full_name), None)
            if matched is not None:
                lr_mult = float(custom[matched].get("lr_mult", 1.0))
                decay_mult = float(custom[matched].get("decay_mult", 1.0))
            elif is_norm:
                decay_mult = float(paramwise.get("norm_decay_mult", 1.0))
            elif param_name == "bias":
                lr_mult = float(paramwise.get("bias_lr_mult", 1.0))
                decay_mult = float(paramwise.get("bias_decay_mult", 1.0))
            key = (lr * lr_mult, weight_decay * decay_mult)
            group = groups.setdefault(
                key, {"params": [], "names": [], "lr": key[0], "weight_decay": key[1]}
            )
            group["params"].append(param)
            group["names"].append(full_name)
    if not groups:
        raise ConfigError("the model has no trainable parameters to optimize")
    return list(groups.values())


def build_optimizer(
    model: nn.Module,
    cfg: Mapping[str, Any],
    total_batch_size: int | None = None,
    auto_scale_lr: Mapping[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """Build the ``optimizer`` config for ``model``, applying param-wise rules and LR scaling if enabled."""
    from detcore.registry import build

    if "type" not in cfg or "lr" not in cfg:
        raise ConfigError("the optimizer table needs at least 'type' and 'lr'")
    kwargs = {k: v for k, v in cfg.items() if k not in ("type", "paramwise")}
    lr = float(kwargs.pop("lr"))
    if auto_scale_lr and auto_scale_lr.get("enable", False):
        if total_batch_size is None:
            raise ConfigError("auto_scale_lr is enabled but the total batch size is unknown")
        lr = scale_lr(lr, total_batch_size, int(auto_scale_lr.get("base_batch_size", 16)))
    weight_decay = float(kwargs.pop("weight_decay", 0.0))
    groups = param_groups(model, lr, weight_decay, cfg.get("paramwise"))
    return build("optimizers", {"type": cfg["type"]}, params=groups, lr=lr, weight_decay=weight_decay, **kwargs)


class GradientStep:
    """Backward + optional gradient clipping (``optimizer_config.grad_clip = {max_norm, norm_type}``) + step.

    With fp16 mixed precision the ``GradScaler`` scales the loss, and gradients are unscaled
    before clipping so ``max_norm`` keeps its meaning. The training loop calls it once per iteration.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        grad_clip: Mapping[str, Any] | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        if grad_clip is not None:
            unknown = set(grad_clip) - {"max_norm", "norm_type"}
            if "max_norm" not in grad_clip or unknown:
                raise ConfigError(
                    "optimizer_config.grad_clip must be a table with max_norm (and optionally norm_type)"
                )
        self.optimizer = optimizer
        self.grad_clip = dict(grad_clip) if grad_clip is not None else None
        self.grad_scaler = grad_scaler

    @classmethod
    def from_config(
        cls, optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any] | None, grad_scaler: Any = None
    ) -> "GradientStep":
        """From the ``optimizer_config`` table (only ``grad_clip`` is known)."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"grad_clip"}
        if unknown:
            raise ConfigError(f"optimizer_config has unknown keys {sorted(unknown)}; only grad_clip is known")
        return cls(optimizer, cfg.get("grad_clip"), grad_scaler)

    def __call__(self, loss: Tensor) -> dict[str, float]:
        """Update the parameters from ``loss``; returns log values (``grad_norm`` when clipping)."""
        optimizer, scaler = self.optimizer, self.grad_scaler
        log_vars: dict[str, float] = {}
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if self.grad_clip is not None:
            if scaler is not None:
                scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if params:
                norm = clip_grad_norm_(
                    params,
                    max_norm=float(self.grad_clip["max_norm"]),
                    norm_type=float(self.grad_clip.get("norm_type", 2.0)),
                )
                log_vars["grad_norm"] = float(norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return log_vars
