"""``detcore publish-model``: a checkpoint ready to upload (manual `003` §2.3.3).

Keeps the weights (as CPU tensors) and the descriptive meta (classes, config, epoch), drops the
optimizer and every piece of training state, and appends the first 8 hex digits of the file's
sha256 to its name, as MMDetection's ``publish_model.py`` does.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from detcore.checkpoint import load_checkpoint_file, save_checkpoint
from detcore.errors import CheckpointError

#: top-level checkpoint keys that only resuming a training needs
TRAINING_STATE_KEYS = ("optimizer", "scheduler", "scaler", "rng", "data_epoch_rng", "hooks")
#: meta keys that describe where a training was, not what the model is
TRAINING_META_KEYS = ("data_epoch", "data_position", "world_size", "best_metrics")


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def published_checkpoint(checkpoint: dict[str, Any], source: str | Path = "checkpoint") -> dict[str, Any]:
    """``{"state_dict", "meta"}`` of ``checkpoint`` with CPU tensors and no training state."""
    state = checkpoint.get("state_dict", checkpoint.get("model"))
    if not isinstance(state, dict):
        if all(hasattr(v, "shape") for v in checkpoint.values()) and checkpoint:
            state = checkpoint  # a bare state dict
        else:
            raise CheckpointError(f"checkpoint file {source} has no state_dict; is it a detcore or MMDetection checkpoint?")
    meta = {k: v for k, v in dict(checkpoint.get("meta") or {}).items() if k not in TRAINING_META_KEYS}
    return {"state_dict": {k.removeprefix("module."): v.detach().cpu() for k, v in state.items()}, "meta": meta}


def publish_model(in_file: str | Path, out_file: str | Path) -> Path:
    """Write the published checkpoint to ``OUT-<sha8>.pth`` and return that path."""
    in_file, out_file = Path(in_file), Path(out_file)
    published = published_checkpoint(load_checkpoint_file(in_file), in_file)
    save_checkpoint(out_file, published)
    sha = sha256_of(out_file)[:8]
    stem = out_file.name[: -len(out_file.suffix)] if out_file.suffix else out_file.name
    final = out_file.with_name(f"{stem}-{sha}{out_file.suffix or '.pth'}")
    out_file.replace(final)
    return final
