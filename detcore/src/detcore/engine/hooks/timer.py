"""IterTimerHook: measures data-loading time and whole-iteration time for the logs."""

from __future__ import annotations

import time

from detcore.engine.protocol import RunnerProtocol
from detcore.interfaces import Hook


class IterTimerHook(Hook):
    """``data_time``: waiting for the batch; ``time``: from the end of one iteration to the end of the next."""

    priority = 70  # LOW: after the optimizer step, before the logger

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def before_train_epoch(self, runner: RunnerProtocol) -> None:
        self._last = time.perf_counter()

    def before_train_iter(self, runner: RunnerProtocol) -> None:
        runner.log_vars["data_time"] = time.perf_counter() - self._last

    def after_train_iter(self, runner: RunnerProtocol) -> None:
        now = time.perf_counter()
        runner.log_vars["time"] = now - self._last
        self._last = now
