"""EvalHook: runs the validation loop every N epochs (or iterations) and records the best results."""

from __future__ import annotations

import math

from detcore.errors import ConfigError
from detcore.engine.protocol import RunnerProtocol
from detcore.interfaces import Hook


class EvalHook(Hook):
    """Calls ``runner.val()`` every ``interval`` epochs (``by_epoch``) or iterations, and at the end.

    After each round ``runner.best_metrics[key] = (value, epoch, iter)`` holds the highest
    value seen of every metric (AP and AR results are all higher-is-better).
    """

    priority = 45  # before CheckpointHook (50), which may keep the best checkpoint

    def __init__(self, interval: int = 1, by_epoch: bool = True) -> None:
        if interval <= 0:
            raise ConfigError(f"evaluation.interval must be positive, got {interval}")
        self.interval = int(interval)
        self.by_epoch = by_epoch

    def after_train_epoch(self, runner: RunnerProtocol) -> None:
        if self.by_epoch and (runner.epoch % self.interval == 0 or runner.epoch == runner.max_epochs):
            runner.val()

    def after_train_iter(self, runner: RunnerProtocol) -> None:
        done = runner.iter + 1
        if not self.by_epoch and (done % self.interval == 0 or done == runner.max_iters):
            runner.val()

    def after_val_epoch(self, runner: RunnerProtocol) -> None:
        for key, value in runner.val_metrics.items():
            value = float(value)
            if math.isnan(value):
                continue
            best = runner.best_metrics.get(key)
            if best is None or value > best[0]:
                runner.best_metrics[key] = (value, runner.epoch, runner.iter)

