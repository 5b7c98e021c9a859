"""LrSchedulerHook: sets the learning rate of every parameter group before each training iteration."""

from __future__ import annotations


from detcore.engine.protocol import RunnerProtocol
from detcore.interfaces import Hook


class LrSchedulerHook(Hook):
    """Applies ``runner.scheduler`` at ``before_train_iter`` and logs the first group's lr."""

    priority = 10  # VERY_HIGH: the lr must be set before anything uses it

    def before_train_iter(self, runner: RunnerProtocol) -> None:
        lrs = runner.scheduler.step(
            runner.optimizer, runner.epoch, runner.iter, runner.max_epochs, runner.max_iters
        )
        runner.log_vars["lr"] = lrs[0]
