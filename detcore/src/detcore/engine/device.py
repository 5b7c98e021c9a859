"""The device a run or command asks for, checked against what this machine has."""

from __future__ import annotations

from typing import Any

import torch

from detcore.errors import ConfigError


def resolve_device(spec: Any = None, where: str = "device") -> torch.device:
    """``spec`` ("cpu", "cuda", "cuda:1", a torch.device, None = CUDA when available) as a usable device.

    A CUDA device on a machine without one (or a GPU index past the last) is a ConfigError naming
    ``where`` (the option or key that asked for it), not a traceback from the first tensor moved.
    """
    if spec is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"{where} = {spec!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"{where} = {spec!r} asks for a GPU, but PyTorch sees no CUDA device on this machine "
                f"(CUDA build: {torch.version.cuda or 'none'}). Use cpu, or install a CUDA build of PyTorch "
                "and check the driver (nvidia-smi)."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{where} = {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s) (0.."
                f"{torch.cuda.device_count() - 1})"
            )
    elif device.type not in ("cpu", "mps", "xpu", "meta"):
        raise ConfigError(f"{where} = {spec!r}: unsupported device type {device.type!r}; use cpu or cuda")
    return device
