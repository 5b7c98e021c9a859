"""Training checkpoints: weight loading with a key report, ``latest.pth`` links, finding the newest file.

A runner checkpoint is a dict ``{"state_dict", "meta", "optimizer"?, "scheduler"?, "scaler"?,
"rng"?, "data_epoch_rng"?, "hooks"?}``. Writing and reading go through the kernel's
:mod:`detcore.checkpoint` (atomic temp-file + rename writes, ``weights_only=True`` loads,
CheckpointError naming a damaged file).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from detcore.checkpoint import load_checkpoint_file as load_checkpoint
from detcore.checkpoint import save_checkpoint
from detcore.errors import CheckpointError

__all__ = [
    "LoadReport", "compare_state", "extract_state_dict", "find_latest_checkpoint", "link_latest", "load_checkpoint",
    "load_weights", "misfit_error", "save_checkpoint",
]


def extract_state_dict(checkpoint: Mapping[str, Any], path: str | os.PathLike[str] = "<memory>") -> dict[str, Any]:
    """The model weights of a checkpoint: its ``state_dict`` (or ``model``) entry, or the dict itself."""
    for key in ("state_dict", "model"):
        if key in checkpoint:
            state = checkpoint[key]
            break
    else:
        state = checkpoint
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint file {path} has no state_dict of tensors")
    # Weights saved from a DistributedDataParallel wrapper carry a "module." prefix.
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


SHOWN_KEYS = 5  # keys listed by name in a report; the rest are counted


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else "")


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys the model wanted but did not get, keys it ignored, and
    keys whose tensors have another shape than the model's (skipped)."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not (self.missing_keys or self.unexpected_keys or self.shape_mismatch)

    def describe(self) -> str:
        """One line: each problem with its count and the first few keys."""
        parts = []
        if self.missing_keys:
            parts.append(f"{len(self.missing_keys)} missing in the checkpoint ({_listing(self.missing_keys)})")
        if self.unexpected_keys:
            parts.append(f"{len(self.unexpected_keys)} unexpected ({_listing(self.unexpected_keys)})")
        if self.shape_mismatch:
            parts.append(f"{len(self.shape_mismatch)} with another shape, skipped ({_listing(self.shape_mismatch)})")
        return "; ".join(parts) if parts else "all keys matched"


def compare_state(model: nn.Module, state: Mapping[str, Any]) -> tuple[LoadReport, dict[str, Any]]:
    """How ``state`` fits ``model``: the report and the tensors that can be loaded. A model with an
    ``adapt_state_dict(state)`` method (e.g. one reading an older parameter layout) renames first."""
    adapt = getattr(model, "adapt_state_dict", None)
    if callable(adapt):
        state = adapt(state)
    own = model.state_dict()
    report = LoadReport()
    usable = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected_keys.append(key)
        elif own[key].shape != value.shape:
            report.shape_mismatch.append(f"{key} {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            usable[key] = value
    report.missing_keys = [k for k in own if k not in state]
    return report, usable


def misfit_error(path: str | os.PathLike[str], report: LoadReport, use: str) -> CheckpointError:
    """The one-paragraph error for weights that do not fit the model a run or command expects."""
    return CheckpointError(
        f"Checkpoint file {path} does not fit the model of this config: {report.describe()}. {use} needs "
        "every weight of the trained model, so it stops here instead of running with randomly initialised "
        "parts. Use the config the checkpoint was trained with (a detcore checkpoint's meta.config holds "
        "it), or fine-tune from these weights with load_from / --load-from, which skips mis-shaped keys."
    )


def load_weights(
    model: nn.Module,
    path: str | os.PathLike[str],
    strict: bool = False,
    map_location: Any = "cpu",
    use: str = "Loading a trained model",
) -> LoadReport:
    """Load only the weights of a checkpoint into ``model``.

    Not strict (fine-tuning, ``load_from``): tensors whose shape differs from the model's are
    skipped and reported, as in MMDetection. ``strict`` (a trained model is expected: ``test``,
    ``infer``, ``init_detector``): any missing, unexpected or mis-shaped key raises one
    CheckpointError listing them; ``use`` names what needed the weights. Nothing is loaded then.
    """
    checkpoint = load_checkpoint(path, map_location=map_location)
    state = extract_state_dict(checkpoint, path)
    report, usable = compare_state(model, state)
    if strict and not report.fits:
        raise misfit_error(path, report, use)
    model.load_state_dict(usable, strict=False)
    return report


def link_latest(target: str | os.PathLike[str], link: str | os.PathLike[str]) -> None:
    """Point ``link`` (e.g. ``latest.pth``) at ``target``: a relative symlink, or a copy where links fail."""
    target, link = Path(target), Path(link)
    tmp = link.with_name(f".{link.name}.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    try:
        os.symlink(os.path.relpath(target, link.parent), tmp)
    except OSError:
        shutil.copyfile(target, tmp)
    os.replace(tmp, link)


def find_latest_checkpoint(work_dir: str | os.PathLike[str]) -> Path | None:
    """``latest.pth`` in ``work_dir`` if present, else the newest ``epoch_*.pth`` / ``iter_*.pth``."""
    work_dir = Path(work_dir)
    latest = work_dir / "latest.pth"
    if latest.exists():
        return latest.resolve()
    candidates = [p for p in work_dir.glob("*.pth") if p.stem.split("_")[0] in ("epoch", "iter")]
    if not candidates:
        return None

    def number(p: Path) -> int:
        tail = p.stem.split("_")[-1]
        return int(tail) if tail.isdigit() else -1

    return max(candidates, key=number)
