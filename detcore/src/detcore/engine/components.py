"""Building the runner's parts from config tables: data loaders, custom hooks, any registry component.

Every argument may already be a built object, which is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detcore.errors import ConfigError
from detcore.interfaces import Hook


def build_component(kind: str, cfg: Any, **defaults: Any) -> Any:
    """Build a config table through the registry; an already-built object is returned as is."""
    if not isinstance(cfg, Mapping):
        return cfg
    from detcore.registry import build

    return build(kind, cfg, **defaults)


def build_loader(cfg: Any, train: bool, seed: int, distributed: bool) -> Any:
    """A data loader from a ``*_dataloader`` table (``batch_size``, sampler options, ``dataset``).

    Training loaders shuffle by default; evaluation loaders keep the dataset order.
    """
    if cfg is None or not isinstance(cfg, Mapping):
        return cfg
    from detcore.data.loader import build_dataloader

    cfg = dict(cfg)
    if "dataset" not in cfg:
        raise ConfigError("a dataloader table needs a 'dataset' table")
    dataset = build_component("datasets", cfg.pop("dataset"))
    if "batch_size" not in cfg:
        raise ConfigError("a dataloader table needs 'batch_size' (images per process)")
    cfg.setdefault("shuffle", train)
    if not train:
        cfg.setdefault("aspect_ratio_grouping", False)
    return build_dataloader(dataset, seed=seed, distributed=distributed, **cfg)


def build_hook(cfg: Hook | Mapping[str, Any]) -> tuple[Hook, int | str | None]:
    """A hook and its configured priority (None: the hook's own) from a ``custom_hooks`` entry."""
    if isinstance(cfg, Hook):
        return cfg, None
    if not isinstance(cfg, Mapping) or "type" not in cfg:
        raise ConfigError(f"each custom_hooks entry must be a table with a 'type', got {cfg!r}")
    cfg = dict(cfg)
    priority = cfg.pop("priority", None)
    hook = build_component("hooks", cfg)
    if not isinstance(hook, Hook):
        raise ConfigError(f"custom hook {cfg['type']!r} is not a detcore Hook")
    return hook, priority


def loader_batch_size(loader: Any) -> int:
    """Images per process of a loader (for the linear lr scaling rule)."""
    size = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
    if size is None:
        raise ConfigError("cannot tell the training batch size for auto_scale_lr")
    return int(size)
