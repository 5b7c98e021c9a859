"""OptimizerHook: back-propagates the summed loss, clips gradients and steps the optimizer."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch.nn.utils import clip_grad_norm_

from detcore.errors import ConfigError
from detcore.interfaces import Hook


class OptimizerHook(Hook):
    """Backward + optional gradient clipping (``grad_clip = {max_norm, norm_type}``) + step.

    With fp16 mixed precision the runner's ``GradScaler`` scales the loss, and gradients are
    unscaled before clipping so ``max_norm`` keeps its meaning.
    """

    priority = 40  # ABOVE_NORMAL

    def __init__(self, grad_clip: Mapping[str, Any] | None = None) -> None:
        if grad_clip is not None:
            unknown = set(grad_clip) - {"max_norm", "norm_type"}
            if "max_norm" not in grad_clip or unknown:
                raise ConfigError(
                    "optimizer_config.grad_clip must be a table with max_norm (and optionally norm_type)"
                )
        self.grad_clip = dict(grad_clip) if grad_clip is not None else None

    def after_train_iter(self, runner: Any) -> None:
        optimizer: torch.optim.Optimizer = runner.optimizer
        scaler = runner.grad_scaler
        loss: torch.Tensor = runner.outputs["loss"]
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
                runner.log_vars["grad_norm"] = float(norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
