"""Learning-rate schedules: step, multistep, cosine, fixed, each with optional linear/constant warmup.

``lr_config`` config table::

    policy = "step"          # step | multistep | cosine | fixed (entry points of detcore.schedulers)
    steps = [8, 11]          # step/multistep: epochs (or iterations when by_epoch = false) where lr *= gamma
    gamma = 0.1
    warmup = "linear"        # "linear" | "constant" | omitted for none
    warmup_iters = 500       # warmup always counts iterations
    warmup_ratio = 0.001     # lr starts at warmup_ratio * regular lr
    by_epoch = true          # regular schedule advances per epoch (true) or per iteration (false);
                             # omitted: per epoch with an epoch-based runner, else per iteration

The lr is set before every training iteration as ``initial_lr * factor`` for each
parameter group, so the schedule is a pure function of (epoch, iteration) and resuming
only needs the initial lrs, which ``state_dict`` keeps.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from detcore.errors import ConfigError

WARMUP_KINDS = (None, "linear", "constant")


class LrScheduler:
    """Base: regular factor from :meth:`regular_factor` times the warmup factor, applied per iteration."""

    def __init__(
        self,
        by_epoch: bool | None = None,
        warmup: str | None = None,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
    ) -> None:
        if warmup not in WARMUP_KINDS:
            raise ConfigError(f"lr_config.warmup must be 'linear', 'constant' or omitted, got {warmup!r}")
        if warmup is not None and warmup_iters <= 0:
            raise ConfigError(f"lr_config.warmup_iters must be positive when warmup is set, got {warmup_iters}")
        if not 0.0 < warmup_ratio <= 1.0:
            raise ConfigError(f"lr_config.warmup_ratio must be in (0, 1], got {warmup_ratio}")
        self.by_epoch = by_epoch
        self.warmup = warmup
        self.warmup_iters = int(warmup_iters)
        self.warmup_ratio = float(warmup_ratio)
        self.initial_lrs: list[float] | None = None

    def regular_factor(self, progress: int, max_progress: int) -> float:
        """Multiplier of the initial lr at ``progress`` (an epoch or an iteration) without warmup."""
        return 1.0

    def warmup_factor(self, iteration: int) -> float:
        """Multiplier during warmup (1 afterwards); ``iteration`` is 0-based."""
        if self.warmup is None or iteration >= self.warmup_iters:
            return 1.0
        if self.warmup == "constant":
            return self.warmup_ratio
        return 1.0 - (1.0 - iteration / self.warmup_iters) * (1.0 - self.warmup_ratio)

    def factor(self, epoch: int, iteration: int, max_epochs: int | None, max_iters: int) -> float:
        """Total multiplier at 0-based ``epoch`` / global ``iteration``."""
        by_epoch = self.by_epoch if self.by_epoch is not None else max_epochs is not None
        if by_epoch:
            if max_epochs is None:
                raise ConfigError("lr_config.by_epoch = true needs an epoch-based runner (runner.max_epochs)")
            regular = self.regular_factor(epoch, max_epochs)
        else:
            regular = self.regular_factor(iteration, max_iters)
        return regular * self.warmup_factor(iteration)

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Remember each group's initial lr (the value the schedule scales)."""
        if self.initial_lrs is None:
            self.initial_lrs = [float(g["lr"]) for g in optimizer.param_groups]
        if len(self.initial_lrs) != len(optimizer.param_groups):
            raise ConfigError(
                f"the lr schedule was saved for {len(self.initial_lrs)} parameter groups but the "
                f"optimizer has {len(optimizer.param_groups)}"
            )

    def step(
        self, optimizer: torch.optim.Optimizer, epoch: int, iteration: int, max_epochs: int | None, max_iters: int
    ) -> list[float]:
        """Set every group's lr for this iteration; returns the new lrs."""
        self.attach(optimizer)
        assert self.initial_lrs is not None
        f = self.factor(epoch, iteration, max_epochs, max_iters)
        lrs = [base * f for base in self.initial_lrs]
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
        return lrs

    def state_dict(self) -> dict[str, Any]:
        return {"initial_lrs": list(self.initial_lrs) if self.initial_lrs is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.initial_lrs = list(state["initial_lrs"]) if state.get("initial_lrs") is not None else None


class FixedLrScheduler(LrScheduler):
    """Constant lr (after the optional warmup)."""


class StepLrScheduler(LrScheduler):
    """lr *= gamma at every milestone in ``steps``, or every ``steps`` epochs/iterations when an int."""

    def __init__(
        self,
        steps: int | Sequence[int],
        gamma: float = 0.1,
        min_lr: float | None = None,
        by_epoch: bool | None = None,
        warmup: str | None = None,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
    ) -> None:
        super().__init__(by_epoch=by_epoch, warmup=warmup, warmup_iters=warmup_iters, warmup_ratio=warmup_ratio)
        if isinstance(steps, int):
            if steps <= 0:
                raise ConfigError(f"lr_config.steps must be positive, got {steps}")
        elif list(steps) != sorted(steps) or not all(isinstance(s, int) and s > 0 for s in steps):
            raise ConfigError(f"lr_config.steps must be increasing positive integers, got {list(steps)}")
        self.steps = steps if isinstance(steps, int) else list(steps)
        self.gamma = float(gamma)
        self.min_lr = min_lr

    def regular_factor(self, progress: int, max_progress: int) -> float:
        if isinstance(self.steps, int):
            exponent = progress // self.steps
        else:
            exponent = sum(1 for s in self.steps if progress >= s)
        return self.gamma**exponent

    def step(self, optimizer: torch.optim.Optimizer, epoch: int, iteration: int, max_epochs: int | None, max_iters: int) -> list[float]:
        lrs = super().step(optimizer, epoch, iteration, max_epochs, max_iters)
        if self.min_lr is not None:
            lrs = [max(lr, self.min_lr) for lr in lrs]
            for group, lr in zip(optimizer.param_groups, lrs):
                group["lr"] = lr
        return lrs


class MultiStepLrScheduler(StepLrScheduler):
    """Step schedule that requires an explicit list of milestones."""

    def __init__(
        self,
        steps: Sequence[int],
        gamma: float = 0.1,
        min_lr: float | None = None,
        by_epoch: bool | None = None,
        warmup: str | None = None,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
    ) -> None:
        if isinstance(steps, int):
            raise ConfigError("lr_config.policy = 'multistep' needs a list of steps, e.g. steps = [8, 11]")
        super().__init__(steps, gamma, min_lr, by_epoch=by_epoch, warmup=warmup, warmup_iters=warmup_iters, warmup_ratio=warmup_ratio)


class CosineLrScheduler(LrScheduler):
    """Cosine annealing from the initial lr to ``min_lr_ratio`` times it over the whole run."""

    def __init__(
        self,
        min_lr_ratio: float = 0.0,
        by_epoch: bool | None = None,
        warmup: str | None = None,
        warmup_iters: int = 0,
        warmup_ratio: float = 0.1,
    ) -> None:
        super().__init__(by_epoch=by_epoch, warmup=warmup, warmup_iters=warmup_iters, warmup_ratio=warmup_ratio)
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(f"lr_config.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.min_lr_ratio = float(min_lr_ratio)

    def regular_factor(self, progress: int, max_progress: int) -> float:
        fraction = min(progress / max(max_progress, 1), 1.0)
        return self.min_lr_ratio + 0.5 * (1.0 - self.min_lr_ratio) * (1.0 + math.cos(math.pi * fraction))


def build_lr_scheduler(cfg: dict[str, Any] | None) -> LrScheduler:
    """Build ``lr_config`` (``policy`` names an entry point of ``detcore.schedulers``); none means fixed."""
    if not cfg:
        return FixedLrScheduler()
    from detcore.registry import build

    cfg = dict(cfg)
    policy = cfg.pop("policy", None)
    type_name = cfg.pop("type", None) or policy
    if type_name is None:
        raise ConfigError("lr_config needs a 'policy' (step, multistep, cosine or fixed)")
    scheduler = build("schedulers", {"type": type_name, **cfg})
    if not isinstance(scheduler, LrScheduler):
        raise ConfigError(f"lr_config.policy {type_name!r} did not build an LrScheduler")
    return scheduler
