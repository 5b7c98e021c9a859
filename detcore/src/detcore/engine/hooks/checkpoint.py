"""CheckpointHook: periodic atomic checkpoints, keep-last-N, keep-best by a metric, ``latest.pth``."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from detcore.engine.checkpoint import link_latest, save_checkpoint
from detcore.engine.dist import is_main_process
from detcore.errors import ConfigError
from detcore.engine.protocol import RunnerProtocol
from detcore.interfaces import Hook

RULES = ("greater", "less")


class CheckpointHook(Hook):
    """Saves ``epoch_N.pth`` (or ``iter_N.pth``) every ``interval`` and points ``latest.pth`` at it.

    ``max_keep`` > 0 deletes all but the newest N periodic files; ``save_best`` names a
    metric (e.g. ``"bbox_mAP"``) whose best value by ``rule`` ("greater"/"less") is kept
    as ``best_<metric>_epoch_N.pth``. Only rank 0 writes.
    """

    priority = 50  # NORMAL: after EvalHook (45) so the best checkpoint sees this round's metrics

    def __init__(
        self,
        interval: int = 1,
        by_epoch: bool = True,
        max_keep: int = -1,
        save_best: str | None = None,
        rule: str = "greater",
        save_optimizer: bool = True,
    ) -> None:
        if interval <= 0:
            raise ConfigError(f"checkpoint.interval must be positive, got {interval}")
        if rule not in RULES:
            raise ConfigError(f"checkpoint.rule must be 'greater' or 'less', got {rule!r}")
        self.interval = int(interval)
        self.by_epoch = by_epoch
        self.max_keep = int(max_keep)
        self.save_best = save_best
        self.rule = rule
        self.save_optimizer = save_optimizer
        self.best_score: float | None = None
        self.best_path: str | None = None
        self._seen_val_round = 0

    # -- timepoints -----------------------------------------------------------------------
    def after_train_epoch(self, runner: RunnerProtocol) -> None:
        if not self.by_epoch:
            return
        self._maybe_save_best(runner, f"epoch_{runner.epoch}")
        if runner.epoch % self.interval == 0 or runner.epoch == runner.max_epochs:
            self._save_periodic(runner, f"epoch_{runner.epoch}.pth")

    def after_train_iter(self, runner: RunnerProtocol) -> None:
        if self.by_epoch:
            return
        done = runner.iter + 1
        self._maybe_save_best(runner, f"iter_{done}", iteration=done)
        if done % self.interval == 0 or done == runner.max_iters:
            self._save_periodic(runner, f"iter_{done}.pth", iteration=done)

    # -- saving ---------------------------------------------------------------------------
    def _save_periodic(self, runner: RunnerProtocol, name: str, iteration: int | None = None) -> None:
        if not is_main_process():
            return
        work_dir = Path(runner.work_dir)
        path = save_checkpoint(
            work_dir / name, runner.make_checkpoint(include_optimizer=self.save_optimizer, iteration=iteration)
        )
        link_latest(path, work_dir / "latest.pth")
        runner.logger.info(f"saved checkpoint {path}")
        if self.max_keep > 0:
            self._remove_old(work_dir, name.split("_")[0])

    def _remove_old(self, work_dir: Path, prefix: str) -> None:
        pattern = re.compile(rf"^{prefix}_(\d+)\.pth$")
        numbered = sorted(
            (int(m.group(1)), p) for p in work_dir.iterdir() if (m := pattern.match(p.name))
        )
        for _, path in numbered[: max(len(numbered) - self.max_keep, 0)]:
            path.unlink()

    def _is_better(self, score: float) -> bool:
        if self.best_score is None:
            return True
        return score > self.best_score if self.rule == "greater" else score < self.best_score

    def _maybe_save_best(self, runner: RunnerProtocol, tag: str, iteration: int | None = None) -> None:
        if self.save_best is None or runner.val_round == self._seen_val_round:
            return
        self._seen_val_round = runner.val_round
        metrics = runner.val_metrics
        if self.save_best not in metrics:
            raise ConfigError(
                f"checkpoint.save_best = {self.save_best!r} is not among the evaluation results "
                f"({', '.join(sorted(metrics)) or 'none'})"
            )
        score = float(metrics[self.save_best])
        if math.isnan(score) or not self._is_better(score):
            return
        self.best_score = score
        if not is_main_process():
            return
        work_dir = Path(runner.work_dir)
        path = work_dir / f"best_{self.save_best.replace('/', '_')}_{tag}.pth"
        previous, self.best_path = self.best_path, str(path)
        save_checkpoint(path, runner.make_checkpoint(include_optimizer=False, iteration=iteration))
        if previous is not None and Path(previous) != path and Path(previous).exists():
            Path(previous).unlink()
        runner.logger.info(f"new best {self.save_best} = {score:.4f}; saved {path}")

    # -- resume ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_path": self.best_path}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = state.get("best_score")
        self.best_path = state.get("best_path")
