"""Checkpoint files: atomic writes, weights-only loads with errors that name the file, stale temp files.

Loading never executes code from a checkpoint: ``torch.load(weights_only=True)`` with PyTorch's
safe-globals allow-list extended by the plain numpy value types (scalars, arrays, dtypes) that
MMDetection checkpoints carry in their ``meta``. Anything else is rejected with what was found.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

from detcore.errors import CheckpointError

TMP_SUFFIX = ".tmp"


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file.

    A crash (or kill -9) during the write may leave the hidden ``.<name>.*.tmp`` file; the next run
    in that folder removes it (:func:`remove_stale_temporaries`).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
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


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete hidden ``.<name>.pth*.tmp`` files a crashed save left in ``folder``; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for candidate in folder.glob(f".*.pth*{TMP_SUFFIX}"):
        if candidate.is_file() or candidate.is_symlink():
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return sorted(removed)


def numpy_safe_globals() -> list[Any]:
    """The numpy types a checkpoint's metadata may hold (values only: no code), for ``safe_globals``.

    Each is listed under its current name and, where numpy 2 moved it, under the numpy 1 name
    older checkpoints (e.g. MMDetection's) were saved with.
    """
    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: list[Any] = [np.ndarray, np.dtype, multiarray.scalar, multiarray._reconstruct]
    for old_module in ("numpy.core.multiarray",):
        allowed += [(multiarray.scalar, f"{old_module}.scalar"), (multiarray._reconstruct, f"{old_module}._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType")]
    return allowed


def _rejection(path: Path, exc: Exception) -> CheckpointError:
    """The error for a file the weights-only unpickler refused: which unsafe content it holds."""
    text = str(exc)
    found = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text))) or sorted(set(re.findall(r"Unsupported [^.\n]*", text)))
    what = ", ".join(found) if found else text.strip().splitlines()[-1][:200]
    return CheckpointError(
        f"Checkpoint file {path} holds Python objects other than tensors and plain values ({what}). detcore "
        "loads checkpoints weights-only so that opening a file never runs code from it, and will not load "
        "this one. Re-save it from the program that wrote it keeping only tensors, numbers, strings, lists "
        "and dicts, for example torch.save({'state_dict': model.state_dict()}, path) (a training "
        "checkpoint's optimizer and logger state often hold such objects and are not needed for weights)."
    )


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True`` (numpy values allowed); a bad file raises CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    try:
        with torch.serialization.safe_globals(numpy_safe_globals()):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _rejection(path, exc) from exc
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CheckpointError(
            f"Checkpoint file {path} could not be read ({type(exc).__name__}: {first[:200]}). It is "
            "truncated, damaged or not a PyTorch checkpoint; re-download or re-save it."
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
