"""Checkpoint files: atomic save, safe load (``weights_only=True``), weight loading with a key report.

A checkpoint is a dict ``{"state_dict", "meta", "optimizer"?, "scheduler"?, "scaler"?,
"rng"?, "hooks"?}``. It is written to a temporary file in the destination folder and
renamed over the target, so a crash mid-write never damages the previous file.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from detcore.errors import CheckpointError


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(dict(checkpoint), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing or damaged file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"checkpoint file {path} is truncated or corrupt and cannot be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint file {path} holds a {type(data).__name__}, expected a dict")
    return data


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


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys the model wanted but did not get, and keys it ignored."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    shape_mismatch: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.missing_keys:
            parts.append(f"missing keys in checkpoint: {', '.join(self.missing_keys)}")
        if self.unexpected_keys:
            parts.append(f"unexpected keys in checkpoint: {', '.join(self.unexpected_keys)}")
        if self.shape_mismatch:
            parts.append(f"shape mismatch (skipped): {', '.join(self.shape_mismatch)}")
        return "; ".join(parts) if parts else "all keys matched"


def load_weights(
    model: nn.Module, path: str | os.PathLike[str], strict: bool = False, map_location: Any = "cpu"
) -> LoadReport:
    """Load only the weights of a checkpoint into ``model`` (fine-tuning: ``load_from``).

    Tensors whose shape differs from the model's are skipped and reported. With ``strict``
    any missing, unexpected or mismatched key raises CheckpointError.
    """
    checkpoint = load_checkpoint(path, map_location=map_location)
    state = extract_state_dict(checkpoint, path)
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
    if strict and (report.missing_keys or report.unexpected_keys or report.shape_mismatch):
        raise CheckpointError(f"checkpoint file {path} does not fit the model: {report.describe()}")
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
