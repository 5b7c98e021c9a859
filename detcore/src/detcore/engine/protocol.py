"""What a hook may use of the runner: the contract between hooks and :class:`detcore.engine.Runner`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from detcore.engine.schedulers import LrScheduler


class RunnerProtocol(Protocol):
    """The runner as hooks see it. Hooks may read everything and write only ``log_vars``,
    ``best_metrics`` and their own state; anything else is the loops' business."""

    # -- run --------------------------------------------------------------------------------
    cfg: Any  # the loaded config (``source``, ``dump()``) or None
    work_dir: Path
    timestamp: str  # shared by every rank; names the log files
    logger: logging.Logger
    seed: int
    device: torch.device
    module: nn.Module  # the detector (unwrapped from DistributedDataParallel)
    optimizer: torch.optim.Optimizer | None
    scheduler: LrScheduler

    # -- loop position ----------------------------------------------------------------------
    by_epoch: bool
    max_epochs: int | None
    max_iters: int
    iters_per_epoch: int
    epoch: int  # completed epochs
    iter: int  # completed iterations
    inner_iter: int  # index of the running iteration within its epoch

    # -- per-iteration and evaluation results -----------------------------------------------
    log_vars: dict[str, float]  # values to log this iteration (losses, lr, time, grad_norm, ...)
    outputs: dict[str, Any]  # ``loss`` (detached) and ``log_vars`` of the last step
    val_metrics: dict[str, float]
    val_round: int  # completed validation passes
    best_metrics: dict[str, tuple[float, int, int]]  # metric -> (value, epoch, iter)

    @property
    def total_iters(self) -> int: ...

    def val(self) -> dict[str, float]: ...

    def make_checkpoint(self, include_optimizer: bool = True, iteration: int | None = None) -> dict[str, Any]: ...
