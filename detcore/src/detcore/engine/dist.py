"""Distributed helpers: process-group setup from ``torchrun`` env vars, rank queries, gathering.

Every helper also works without an initialized process group (one process, rank 0), so
the runner calls them unconditionally.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from detcore.errors import ConfigError


def is_distributed() -> bool:
    """True when a process group is initialized (training under ``torchrun``)."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Only rank 0 writes logs and checkpoints."""
    return get_rank() == 0


def init_distributed(launcher: str = "torchrun", backend: str | None = None) -> torch.device:
    """Join the process group described by the env vars ``torchrun`` sets; return this rank's device.

    The backend is nccl when CUDA is available and gloo otherwise, unless given.
    """
    if launcher != "torchrun":
        raise ConfigError(f"unknown launcher {launcher!r}; use 'none' or 'torchrun'")
    missing = [k for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise ConfigError(
            f"launcher 'torchrun' needs the env vars {', '.join(missing)}; start the program with "
            "`torchrun --nproc_per_node=N ...`"
        )
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available()
    if backend is None:
        backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not is_distributed():
        dist.init_process_group(backend=backend, init_method="env://")
    return device


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (a one-element list without a process group)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (for logging losses that every rank computed)."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / get_world_size()


def destroy_distributed() -> None:
    if is_distributed():
        dist.destroy_process_group()
