"""Checkpoint state: what a runner checkpoint saves, and what resuming restores from it.

A checkpoint is ``{"state_dict", "meta", "optimizer"?, "scheduler"?, "scaler"?, "rng"?,
"data_epoch_rng"?, "hooks"?}``; ``meta`` holds the loop position (``epoch``, ``iter``,
``data_epoch``, ``data_position``), ``seed``, ``world_size``, ``classes``, the config text and
``best_metrics``. Resuming from it continues bit-for-bit where the saving run was.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detcore.engine.checkpoint import compare_state, extract_state_dict, find_latest_checkpoint, load_checkpoint
from detcore.engine.checkpoint import misfit_error
from detcore.engine.seeding import get_rng_states
from detcore.errors import CheckpointError

if TYPE_CHECKING:
    from detcore.engine.runner import Runner


def make_checkpoint(runner: "Runner", include_optimizer: bool = True, iteration: int | None = None) -> dict[str, Any]:
    """The checkpoint dict of the runner's current state (``iteration`` overrides the completed count)."""
    classes = getattr(getattr(runner.train_dataloader, "dataset", None), "classes", None)
    dump = getattr(runner.cfg, "dump", None)
    meta = {
        "epoch": runner.epoch,
        "iter": runner.iter if iteration is None else iteration,
        "data_epoch": runner.data_epoch,
        "data_position": runner.data_position,
        "seed": runner.seed,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "world_size": runner.world_size,
        "classes": list(classes) if classes else None,
        "config": dump() if callable(dump) else None,
        "best_metrics": {k: list(v) for k, v in runner.best_metrics.items()},
    }
    checkpoint: dict[str, Any] = {"state_dict": runner.module.state_dict(), "meta": meta}
    if include_optimizer and runner.optimizer is not None:
        checkpoint["optimizer"] = runner.optimizer.state_dict()
        checkpoint["scheduler"] = runner.scheduler.state_dict()
        if runner.grad_scaler is not None:
            checkpoint["scaler"] = runner.grad_scaler.state_dict()
        checkpoint["rng"] = get_rng_states()
        if runner.train_loop is not None and runner.train_loop.data_epoch_rng is not None:
            checkpoint["data_epoch_rng"] = runner.train_loop.data_epoch_rng
        checkpoint["hooks"] = {
            type(h).__name__: h.state_dict() for h in runner.hooks if callable(getattr(h, "state_dict", None))
        }
    return checkpoint


def resume_path(resume: Any, work_dir: Path) -> Path | None:
    """The checkpoint ``resume`` names: true / "auto" = the latest in ``work_dir`` (None if there is none)."""
    if resume is True or resume == "auto":
        return find_latest_checkpoint(work_dir)
    return Path(resume)


def restore_checkpoint(runner: "Runner", path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Restore model, optimizer, schedule, scaler, loop position and hooks from ``path``.

    Returns the saved RNG state, which the caller puts back when training starts (so that
    building things in between does not disturb it).
    """
    checkpoint = load_checkpoint(path, map_location="cpu")
    for key in ("optimizer", "meta"):
        if key not in checkpoint:
            raise CheckpointError(
                f"checkpoint file {path} has no {key!r} state, so training cannot resume from it; "
                "use load_from to start from its weights"
            )
    report, usable = compare_state(runner.module, extract_state_dict(checkpoint, path))
    if not report.fits:
        raise misfit_error(path, report, "Resuming")
    runner.module.load_state_dict(usable, strict=True)
    try:
        runner.optimizer.load_state_dict(checkpoint["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint file {path}: its optimizer state does not fit this config's optimizer ({exc}); resume "
            "with the optimizer settings it was trained with, or start from its weights with load_from"
        ) from exc
    if "scheduler" in checkpoint:
        runner.scheduler.load_state_dict(checkpoint["scheduler"])
    if runner.grad_scaler is not None and "scaler" in checkpoint:
        runner.grad_scaler.load_state_dict(checkpoint["scaler"])
    meta = checkpoint["meta"]
    runner.epoch = int(meta["epoch"])
    runner.iter = int(meta["iter"])
    runner.data_epoch = int(meta.get("data_epoch", runner.epoch))
    runner.data_position = int(meta.get("data_position", 0))
    runner.best_metrics = {k: tuple(v) for k, v in meta.get("best_metrics", {}).items()}
    hook_states = checkpoint.get("hooks", {})
    for hook in runner.hooks:
        state = hook_states.get(type(hook).__name__)
        if state is not None and callable(getattr(hook, "load_state_dict", None)):
            hook.load_state_dict(state)
    if runner.train_loop is not None:
        runner.train_loop.resume_data_rng = checkpoint.get("data_epoch_rng")
    return checkpoint.get("rng")
