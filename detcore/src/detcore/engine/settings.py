"""Config resolution: every top-level key the runner reads is declared once, in :class:`RunnerSettings`.

Schema (TOML, MMDetection v2 style; defaults in ``configs/_base_/default_runtime.toml``): the
fields of :class:`RunnerSettings` below, each with its meaning; :mod:`~detcore.engine.validation`
checks a whole config against it (and the tables' own keys, types and ranges) before anything is built. ``Runner(**settings)`` and
``Runner.from_config(cfg)`` both go through :meth:`RunnerSettings.create`, so an unknown
keyword is an error with the list of known ones.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from detcore.errors import ConfigError

EPOCH_BASED = ("EpochBasedRunner", "EpochBased")
ITER_BASED = ("IterBasedRunner", "IterBased")
KEY_ALIASES = {"fp16": "amp"}  # MMDetection v2 spelling -> detcore key


@dataclass
class RunnerSettings:
    """The runner's config keys with their defaults; a table may also be an already-built object."""

    # detector table with ``type`` (entry point of ``detcore.detectors``)
    model: Any = None
    # where logs and checkpoints go (the CLI's --work-dir wins)
    work_dir: str | os.PathLike[str] | None = None
    # ``batch_size`` (per process), ``num_workers``, sampler options (``shuffle``,
    # ``aspect_ratio_grouping``, ...), ``on_bad_image`` ("error" | "skip") for
    # ``detcore.data.build_dataloader``, and a ``dataset`` table whose ``pipeline`` is a list of
    # transforms or the name of a top-level list
    train_dataloader: Any = None
    val_dataloader: Any = None
    test_dataloader: Any = None
    # ``type``, ``lr``, ``momentum``, ``weight_decay``, ``paramwise`` (see detcore.engine.optim)
    optimizer: Any = None
    # ``grad_clip = {max_norm, norm_type}``
    optimizer_config: Mapping[str, Any] | None = None
    # ``policy``, ``steps``, ``gamma``, ``warmup``, ``warmup_iters``, ``warmup_ratio``, ``by_epoch``
    lr_config: Any = None
    # ``enable`` (default false), ``base_batch_size``: the linear scaling rule
    auto_scale_lr: Mapping[str, Any] | None = None
    # ``type`` ("EpochBasedRunner" | "IterBasedRunner"), ``max_epochs`` | ``max_iters``
    runner: Mapping[str, Any] | None = None
    # ``interval``, ``max_keep``, ``save_best`` (metric name), ``rule``
    checkpoint: Mapping[str, Any] | None = None
    # ``interval``, ``progress_bar``
    log: Mapping[str, Any] | None = None
    # ``interval``, ``type`` (metric component, default "CocoMetric"), ``metric`` (list); the
    # other keys go to the metric
    evaluation: Mapping[str, Any] | None = None
    # (alias ``fp16``) ``enable``, ``dtype`` ("auto": bf16 on CPU, fp16 + GradScaler on CUDA)
    amp: Mapping[str, Any] | bool | None = None
    # None draws a seed on rank 0 and shares it
    seed: int | None = None
    # torch deterministic algorithms
    deterministic: bool = False
    # checkpoint whose weights start training (fine-tuning)
    load_from: str | os.PathLike[str] | None = None
    # false | true (latest checkpoint in work_dir) | "path/to/ckpt.pth"
    resume: bool | str | os.PathLike[str] = False
    # tables with ``type`` (entry point of ``detcore.hooks``), optional ``priority``, arguments
    custom_hooks: Sequence[Any] = ()
    # DistributedDataParallel option for models with unused branches
    find_unused_parameters: bool = False
    # "cpu", "cuda", "cuda:1", ...; None picks CUDA when available
    device: Any = None
    # NHWC weights and images (faster oneDNN / cuDNN convolutions)
    channels_last: bool = False

    @classmethod
    def create(cls, **values: Any) -> "RunnerSettings":
        """Settings from keyword values; unknown names are a ConfigError naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown runner setting(s) {unknown}; known: {', '.join(sorted(known))}")
        settings = cls(**values)
        settings.deterministic = bool(settings.deterministic)
        settings.find_unused_parameters = bool(settings.find_unused_parameters)
        settings.channels_last = bool(settings.channels_last)
        settings.load_from = settings.load_from or None
        settings.custom_hooks = tuple(settings.custom_hooks or ())
        return settings

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "RunnerSettings":
        """The settings a loaded config gives (pipelines resolved); other top-level keys are ignored."""
        resolved = resolve_pipelines(cfg)
        for alias, key in KEY_ALIASES.items():
            if alias in resolved and key not in resolved:
                resolved[key] = resolved[alias]
        return cls.create(**{f.name: resolved[f.name] for f in fields(cls) if f.name in resolved})


@dataclass(frozen=True)
class LoopSettings:
    """The ``runner`` table: epoch-based (``max_epochs``) or iteration-based (``max_iters``)."""

    by_epoch: bool = True
    max_epochs: int | None = 12
    max_iters: int | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> "LoopSettings":
        loop = dict(table or {"type": "EpochBasedRunner", "max_epochs": 12})
        loop_type = loop.pop("type", "EpochBasedRunner")
        max_epochs = loop.pop("max_epochs", 12)
        max_iters = loop.pop("max_iters", None)
        if loop:
            raise ConfigError(f"runner table has unknown keys {sorted(loop)}")
        if loop_type in EPOCH_BASED:
            return cls(by_epoch=True, max_epochs=int(max_epochs))
        if loop_type in ITER_BASED:
            if max_iters is None:
                raise ConfigError("runner.type = 'IterBasedRunner' needs runner.max_iters")
            return cls(by_epoch=False, max_epochs=None, max_iters=int(max_iters))
        raise ConfigError(f"runner.type must be 'EpochBasedRunner' or 'IterBasedRunner', got {loop_type!r}")


def resolve_pipelines(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``cfg`` where a dataset's ``pipeline = "name"`` is replaced by the top-level list ``name``.

    Inner datasets of wrappers (``dataset = {...}``, ``datasets = [...]``) are resolved too.
    """
    cfg = copy.deepcopy(dict(cfg))

    def resolve(dataset: Any, where: str) -> None:
        if not isinstance(dataset, dict):
            return
        ref = dataset.get("pipeline")
        if isinstance(ref, str):
            if not isinstance(cfg.get(ref), list):
                raise ConfigError(f"{where}.pipeline names {ref!r}, which is not a top-level list in the config")
            dataset["pipeline"] = copy.deepcopy(cfg[ref])
        resolve(dataset.get("dataset"), f"{where}.dataset")
        inner = dataset.get("datasets")
        if isinstance(inner, list):
            for i, child in enumerate(inner):
                resolve(child, f"{where}.datasets[{i}]")

    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        loader = cfg.get(key)
        if isinstance(loader, Mapping):
            resolve(loader.get("dataset"), f"{key}.dataset")
    return cfg
