"""LoggerHook: averaged losses, lr, timing and memory to the text log and a JSON-lines log.

Each JSON line is one record: ``{"mode": "train", "epoch", "iter", "global_iter", "lr",
"time", "data_time", "memory", <losses>...}`` every ``interval`` iterations, and
``{"mode": "val", "epoch", "iter", <metrics>...}`` after every evaluation. The first line
(``"mode": "meta"``) describes the run. A progress bar with ETA is drawn only when
stderr is an interactive terminal.
"""

from __future__ import annotations

import datetime
import json
import math
import resource
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from detcore.engine.dist import get_world_size, is_main_process
from detcore.engine.protocol import RunnerProtocol
from detcore.interfaces import Hook

NOT_AVERAGED = ("lr",)


def memory_mb(device: torch.device) -> int:
    """Peak memory in MiB: CUDA allocator peak on GPU, process peak resident size on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device) / 2**20)
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


class LoggerHook(Hook):
    """Writes averaged training values every ``interval`` iterations and every evaluation result."""

    priority = 90  # VERY_LOW: after the optimizer step and the timer

    def __init__(self, interval: int = 50, progress_bar: bool | None = None) -> None:
        self.interval = max(int(interval), 1)
        self.progress_bar = progress_bar
        self.json_path: Path | None = None
        self._buffer: dict[str, list[float]] = defaultdict(list)
        self._times: list[float] = []

    # -- run ------------------------------------------------------------------------------
    def before_run(self, runner: RunnerProtocol) -> None:
        if self.progress_bar is None:
            self.progress_bar = sys.stderr.isatty()
        if not is_main_process():
            return
        self.json_path = Path(runner.work_dir) / f"{runner.timestamp}.log.json"
        self._write(
            {
                "mode": "meta",
                "config": getattr(runner.cfg, "source", None) and str(runner.cfg.source),
                "seed": runner.seed,
                "world_size": get_world_size(),
                "max_epochs": runner.max_epochs,
                "max_iters": runner.max_iters,
                "start_epoch": runner.epoch,
                "start_iter": runner.iter,
            }
        )

    def after_run(self, runner: RunnerProtocol) -> None:
        if self.progress_bar:
            sys.stderr.write("\n")

    # -- train ----------------------------------------------------------------------------
    def before_train_epoch(self, runner: RunnerProtocol) -> None:
        self._buffer.clear()

    def after_train_iter(self, runner: RunnerProtocol) -> None:
        for key, value in runner.log_vars.items():
            self._buffer[key].append(float(value))
        if "time" in runner.log_vars:
            self._times.append(float(runner.log_vars["time"]))
            self._times = self._times[-200:]
        if self.progress_bar and is_main_process():
            self._draw_progress(runner)
        end_of_epoch = runner.by_epoch and runner.inner_iter + 1 == runner.iters_per_epoch
        if (runner.iter + 1) % self.interval == 0 or end_of_epoch:
            self._flush_train(runner)

    def _flush_train(self, runner: RunnerProtocol) -> None:
        record: dict[str, Any] = {
            "mode": "train",
            "epoch": runner.epoch + 1,
            "iter": runner.inner_iter + 1,
            "global_iter": runner.iter + 1,
        }
        for key, values in self._buffer.items():
            record[key] = values[-1] if key in NOT_AVERAGED else sum(values) / len(values)
        record["memory"] = memory_mb(runner.device)
        self._buffer.clear()
        if not is_main_process():
            return
        self._write(record)
        where = (
            f"Epoch [{record['epoch']}][{record['iter']}/{runner.iters_per_epoch}]"
            if runner.by_epoch
            else f"Iter [{record['global_iter']}/{runner.max_iters}]"
        )
        values = ", ".join(
            f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in record.items()
            if k not in ("mode", "epoch", "iter", "global_iter")
        )
        runner.logger.info(f"{where}\t{values}")

    def _draw_progress(self, runner: RunnerProtocol) -> None:
        done = runner.iter + 1
        remaining = runner.total_iters - done
        avg = sum(self._times) / len(self._times) if self._times else 0.0
        eta = str(datetime.timedelta(seconds=int(avg * remaining)))
        width = 30
        filled = int(width * done / max(runner.total_iters, 1))
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{runner.total_iters} ETA {eta} ")
        sys.stderr.flush()

    # -- val ------------------------------------------------------------------------------
    def after_val_epoch(self, runner: RunnerProtocol) -> None:
        if not is_main_process():
            return
        record: dict[str, Any] = {"mode": "val", "epoch": runner.epoch, "iter": runner.iter}
        for key, value in runner.val_metrics.items():
            value = float(value)
            record[key] = None if math.isnan(value) else value
        self._write(record)
        shown = ", ".join(f"{k}: {v:.4f}" for k, v in runner.val_metrics.items())
        runner.logger.info(f"Evaluation after epoch {runner.epoch} / iter {runner.iter}: {shown}")

    def _write(self, record: dict[str, Any]) -> None:
        if self.json_path is None:
            return
        with open(self.json_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
