"""Checkpoint files: atomic writes and weights-only loads with errors that name the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from detcore.errors import CheckpointError


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; a bad file raises CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"Checkpoint file {path} could not be read ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). It may be truncated or not a "
            f"PyTorch checkpoint; re-download or re-save it."
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"Checkpoint file {path} holds a {type(obj).__name__}, not a dict.")
    return obj


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """The state dict inside a checkpoint (``state_dict`` / ``model`` key) or a bare state dict."""
    obj = load_checkpoint_file(path)
    for key in ("state_dict", "model"):
        if key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj
