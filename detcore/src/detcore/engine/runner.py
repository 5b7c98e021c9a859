"""The training/testing runner: epoch- or iteration-based loops whose behaviour lives in hooks.

The loop only fetches batches and runs the forward pass; everything else (lr schedule,
backward and optimizer step, timing, checkpoints, evaluation, logging) is a hook called
at the ten timepoints of the MMDetection paper (`000` §3.2) in priority order.

Config schema (TOML, MMDetection v2 style; see ``configs/_base_/default_runtime.toml``):

- ``model``: detector table with ``type`` (entry point of ``detcore.detectors``).
- ``train_dataloader`` / ``val_dataloader`` / ``test_dataloader``: ``batch_size`` (per
  process), ``num_workers``, sampler options (``shuffle``, ``aspect_ratio_grouping``, ...)
  passed to ``detcore.data.build_dataloader``, and a ``dataset`` table whose ``pipeline``
  is a list of transforms or the name of a top-level list (``"train_pipeline"``).
- ``optimizer``: ``type``, ``lr``, ``momentum``, ``weight_decay``, ``paramwise`` (see
  :mod:`detcore.engine.optim`); ``optimizer_config.grad_clip = {max_norm, norm_type}``.
- ``lr_config``: ``policy``, ``steps``, ``gamma``, ``warmup``, ``warmup_iters``,
  ``warmup_ratio``, ``by_epoch`` (see :mod:`detcore.engine.schedulers`).
- ``auto_scale_lr``: ``enable`` (default false), ``base_batch_size``: linear scaling rule.
- ``runner``: ``type`` ("EpochBasedRunner" or "IterBasedRunner"), ``max_epochs`` / ``max_iters``.
- ``checkpoint``: ``interval``, ``max_keep``, ``save_best`` (metric name), ``rule``.
- ``log``: ``interval``. ``evaluation``: ``interval``, ``type`` (metric component,
  default "CocoMetric"), ``metric`` (list, e.g. ["bbox"]), other keys go to the metric.
- ``amp`` (alias ``fp16``): ``enable``, ``dtype`` ("auto": bf16 on CPU, fp16 on CUDA).
- ``seed``, ``deterministic``, ``work_dir``, ``load_from`` (weights only), ``resume``
  (true = latest checkpoint in work_dir, or a path), ``find_unused_parameters`` (DDP),
  ``custom_hooks`` (list of tables with ``type`` and optional ``priority``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from detcore.engine.checkpoint import (
    LoadReport,
    extract_state_dict,
    find_latest_checkpoint,
    load_checkpoint,
    load_weights,
)
from detcore.engine.dist import (
    all_gather_object,
    broadcast_object,
    get_rank,
    get_world_size,
    init_distributed,
    is_distributed,
    is_main_process,
)
from detcore.engine.hooks import (
    CheckpointHook,
    EvalHook,
    IterTimerHook,
    LoggerHook,
    LrSchedulerHook,
    OptimizerHook,
    get_priority,
)
from detcore.engine.optim import build_optimizer
from detcore.engine.schedulers import LrScheduler, build_lr_scheduler
from detcore.engine.seeding import get_rng_states, set_random_seed, set_rng_states
from detcore.errors import CheckpointError, ConfigError, DetcoreError
from detcore.interfaces import HOOK_TIMEPOINTS, Hook
from detcore.structures import Batch, Instances

EPOCH_BASED = ("EpochBasedRunner", "EpochBased")
ITER_BASED = ("IterBasedRunner", "IterBased")
AMP_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


class NonFiniteLossError(DetcoreError, FloatingPointError):
    """A training loss became NaN or infinite; training stopped before the optimizer step."""


def parse_losses(losses: Mapping[str, Any]) -> tuple[Tensor, dict[str, float]]:
    """Sum every entry whose key contains "loss" (lists are summed); all entries become log values.

    In distributed training the logged values are averaged over ranks, so a non-finite loss on
    any rank is seen by every rank.
    """
    if not isinstance(losses, Mapping) or not losses:
        raise ConfigError(f"Detector.loss must return a non-empty dict of tensors, got {type(losses).__name__}")
    means: dict[str, Tensor] = {}
    for key, value in losses.items():
        if isinstance(value, Tensor):
            means[key] = value.mean()
        elif isinstance(value, Sequence) and value and all(isinstance(v, Tensor) for v in value):
            means[key] = sum(v.mean() for v in value)
        else:
            raise ConfigError(f"loss entry {key!r} must be a tensor or a list of tensors, got {type(value).__name__}")
    loss_keys = [k for k in means if "loss" in k]
    if not loss_keys:
        raise ConfigError(f"Detector.loss returned no key containing 'loss' (got {', '.join(means)})")
    total = sum(means[k] for k in loss_keys)
    names = list(means) + ["loss"]
    values = torch.stack([means[k].detach().float() for k in means] + [total.detach().float()])
    if is_distributed():
        values = values.clone()
        torch.distributed.all_reduce(values)
        values = values / get_world_size()
    return total, dict(zip(names, values.tolist()))


def _as_float32(predictions: Sequence[Instances]) -> list[Instances]:
    """Predictions on CPU with floating fields in float32 (mixed precision may give bf16/fp16)."""
    out = []
    for inst in predictions:
        inst = inst.to("cpu")
        for name, value in inst.fields().items():
            if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != torch.float32:
                inst.set(name, value.float())
        out.append(inst)
    return out


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


def _build(kind: str, cfg: Any, **defaults: Any) -> Any:
    """Build a config table through the registry; an already-built object is returned as is."""
    if not isinstance(cfg, Mapping):
        return cfg
    from detcore.registry import build

    return build(kind, cfg, **defaults)


class Runner:
    """Owns the model, data, optimizer, schedule and hooks of one run; ``train()``, ``val()``, ``test()``.

    Every component argument may be a config table (built through the registry) or an object.
    """

    def __init__(
        self,
        model: nn.Module | Mapping[str, Any],
        work_dir: str | os.PathLike[str],
        train_dataloader: Any = None,
        val_dataloader: Any = None,
        test_dataloader: Any = None,
        optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
        optimizer_config: Mapping[str, Any] | None = None,
        lr_config: LrScheduler | Mapping[str, Any] | None = None,
        auto_scale_lr: Mapping[str, Any] | None = None,
        runner: Mapping[str, Any] | None = None,
        checkpoint: Mapping[str, Any] | None = None,
        log: Mapping[str, Any] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        amp: Mapping[str, Any] | bool | None = None,
        seed: int | None = None,
        deterministic: bool = False,
        load_from: str | os.PathLike[str] | None = None,
        resume: bool | str | os.PathLike[str] = False,
        custom_hooks: Sequence[Hook | Mapping[str, Any]] = (),
        launcher: str = "none",
        find_unused_parameters: bool = False,
        device: str | torch.device | None = None,
        channels_last: bool = False,
        cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        # -- processes, device, seed ------------------------------------------------------
        if launcher not in ("none", "torchrun"):
            raise ConfigError(f"unknown launcher {launcher!r}; use 'none' or 'torchrun'")
        if launcher == "torchrun":
            self.device = init_distributed("torchrun")
        else:
            self.device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.rank, self.world_size = get_rank(), get_world_size()
        if seed is None:
            seed = broadcast_object(random.SystemRandom().randrange(2**31))
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        set_random_seed(self.seed, self.deterministic)
        # -- work dir and logging ---------------------------------------------------------
        self.work_dir = Path(work_dir)
        if is_main_process():
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self.timestamp = broadcast_object(time.strftime("%Y%m%d_%H%M%S"))
        self.logger = self._make_logger()
        # -- model, data, metrics ---------------------------------------------------------
        self.module: nn.Module = _build("detectors", model).to(self.device)
        # NHWC weights and images: oneDNN (CPU) and cuDNN convolutions run faster in that layout
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.train_dataloader = self._build_dataloader(train_dataloader, train=True)
        self.val_dataloader = self._build_dataloader(val_dataloader, train=False)
        self.evaluation_cfg = dict(evaluation or {})
        self.val_metric = self._build_metric(self.val_dataloader)
        # the test data is built on first use: training runs never pay for it
        self._test_dataloader_cfg = test_dataloader
        self._test_dataloader: Any = None
        self._test_metric: Any = None
        # -- loop -------------------------------------------------------------------------
        loop = dict(runner or {"type": "EpochBasedRunner", "max_epochs": 12})
        loop_type = loop.pop("type", "EpochBasedRunner")
        if loop_type in EPOCH_BASED:
            self.by_epoch = True
            self.max_epochs: int | None = int(loop.pop("max_epochs", 12))
        elif loop_type in ITER_BASED:
            self.by_epoch = False
            self.max_epochs = None
            if "max_iters" not in loop:
                raise ConfigError("runner.type = 'IterBasedRunner' needs runner.max_iters")
        else:
            raise ConfigError(f"runner.type must be 'EpochBasedRunner' or 'IterBasedRunner', got {loop_type!r}")
        max_iters = loop.pop("max_iters", None)
        if loop:
            raise ConfigError(f"runner table has unknown keys {sorted(loop)}")
        self.iters_per_epoch = len(self.train_dataloader) if self.train_dataloader is not None else 0
        if self.by_epoch:
            self.max_iters = self.max_epochs * self.iters_per_epoch
        else:
            self.max_iters = int(max_iters)
        # -- optimization -----------------------------------------------------------------
        self.optimizer: torch.optim.Optimizer | None = None
        if optimizer is not None and self.train_dataloader is not None:
            if isinstance(optimizer, Mapping):
                self.optimizer = build_optimizer(
                    self.module, optimizer, self._total_batch_size(), auto_scale_lr
                )
            else:
                self.optimizer = optimizer
        self.scheduler = lr_config if isinstance(lr_config, LrScheduler) else build_lr_scheduler(
            dict(lr_config) if lr_config is not None else None
        )
        self._setup_amp(amp)
        self.model: nn.Module = self.module
        if is_distributed():
            self.model = nn.parallel.DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
            )
        # -- state ------------------------------------------------------------------------
        self.epoch = 0  # completed epochs (0-based index of the running epoch)
        self.iter = 0  # completed iterations
        self.inner_iter = 0
        self.data_epoch = 0  # passes over the training data started (iteration-based loop)
        self.data_position = 0  # batches consumed in the current pass
        self._data_epoch_rng: dict[str, Any] | None = None
        self._resume_rng: dict[str, Any] | None = None
        self._resume_data_rng: dict[str, Any] | None = None
        self.log_vars: dict[str, float] = {}
        self.outputs: dict[str, Any] = {}
        self.val_metrics: dict[str, float] = {}
        self.val_round = 0
        self.best_metrics: dict[str, tuple[float, int, int]] = {}
        self.test_metrics: dict[str, float] = {}
        self.load_report: LoadReport | None = None
        self.load_from = load_from
        self.resume_from = resume
        self._initial_state_loaded = False
        # -- hooks ------------------------------------------------------------------------
        self.hooks: list[Hook] = []
        self.register_hook(LrSchedulerHook())
        self.register_hook(OptimizerHook(**dict(optimizer_config or {})))
        self.register_hook(IterTimerHook())
        self.register_hook(CheckpointHook(**{"by_epoch": self.by_epoch, **dict(checkpoint or {})}))
        self.register_hook(LoggerHook(**dict(log or {})))
        if self.val_dataloader is not None and self.val_metric is not None:
            self.register_hook(EvalHook(interval=int(self.evaluation_cfg.get("interval", 1)), by_epoch=self.by_epoch))
        for hook_cfg in custom_hooks:
            self.register_hook(*self._build_hook(hook_cfg))

    # -- construction helpers -------------------------------------------------------------
    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], work_dir: str | os.PathLike[str] | None = None, launcher: str = "none"
    ) -> "Runner":
        """Build a runner from a loaded config (see the module docstring for the schema)."""
        resolved = resolve_pipelines(cfg)
        work_dir = work_dir or resolved.get("work_dir")
        if not work_dir:
            raise ConfigError("no work_dir: set work_dir in the config or pass --work-dir")
        if "model" not in resolved:
            raise ConfigError("the config has no model table")
        amp = resolved.get("amp", resolved.get("fp16"))
        return cls(
            model=resolved["model"],
            work_dir=work_dir,
            train_dataloader=resolved.get("train_dataloader"),
            val_dataloader=resolved.get("val_dataloader"),
            test_dataloader=resolved.get("test_dataloader"),
            optimizer=resolved.get("optimizer"),
            optimizer_config=resolved.get("optimizer_config"),
            lr_config=resolved.get("lr_config"),
            auto_scale_lr=resolved.get("auto_scale_lr"),
            runner=resolved.get("runner"),
            checkpoint=resolved.get("checkpoint"),
            log=resolved.get("log"),
            evaluation=resolved.get("evaluation"),
            amp=amp,
            seed=resolved.get("seed"),
            deterministic=bool(resolved.get("deterministic", False)),
            load_from=resolved.get("load_from") or None,
            resume=resolved.get("resume", False),
            custom_hooks=resolved.get("custom_hooks", ()),
            launcher=launcher,
            find_unused_parameters=bool(resolved.get("find_unused_parameters", False)),
            device=resolved.get("device"),
            channels_last=bool(resolved.get("channels_last", False)),
            cfg=cfg,
        )

    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"detcore.runner.{self.timestamp}.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.INFO if is_main_process() else logging.WARNING)
        formatter = logging.Formatter("%(asctime)s - %(levelname)s - %(message)s")
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        logger.addHandler(stream)
        if is_main_process():
            file_handler = logging.FileHandler(self.work_dir / f"{self.timestamp}.log", encoding="utf-8")
            file_handler.setFormatter(formatter)
            logger.addHandler(file_handler)
        return logger

    def close(self) -> None:
        """Release the log files (the runner stays usable for inspection)."""
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build_dataloader(self, cfg: Any, train: bool) -> Any:
        if cfg is None or not isinstance(cfg, Mapping):
            return cfg
        from detcore.data.loader import build_dataloader

        cfg = dict(cfg)
        if "dataset" not in cfg:
            raise ConfigError("a dataloader table needs a 'dataset' table")
        dataset = _build("datasets", cfg.pop("dataset"))
        if "batch_size" not in cfg:
            raise ConfigError("a dataloader table needs 'batch_size' (images per process)")
        cfg.setdefault("shuffle", train)
        if not train:
            cfg.setdefault("aspect_ratio_grouping", False)
        return build_dataloader(dataset, seed=self.seed, distributed=is_distributed(), **cfg)

    def _build_metric(self, loader: Any) -> Any:
        if loader is None or not self.evaluation_cfg:
            return None
        metric_cfg = {k: v for k, v in self.evaluation_cfg.items() if k != "interval"}
        metric_cfg.setdefault("type", "CocoMetric")
        metric = _build("metrics", metric_cfg)
        dataset = getattr(loader, "dataset", None)
        if dataset is not None and hasattr(metric, "bind"):
            metric.bind(dataset)
        return metric

    def _build_hook(self, cfg: Hook | Mapping[str, Any]) -> tuple[Hook, int | str | None]:
        if isinstance(cfg, Hook):
            return cfg, None
        if not isinstance(cfg, Mapping) or "type" not in cfg:
            raise ConfigError(f"each custom_hooks entry must be a table with a 'type', got {cfg!r}")
        cfg = dict(cfg)
        priority = cfg.pop("priority", None)
        hook = _build("hooks", cfg)
        if not isinstance(hook, Hook):
            raise ConfigError(f"custom hook {cfg['type']!r} is not a detcore Hook")
        return hook, priority

    def _total_batch_size(self) -> int:
        loader = self.train_dataloader
        size = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
        if size is None:
            raise ConfigError("cannot tell the training batch size for auto_scale_lr")
        return int(size) * self.world_size

    def _setup_amp(self, amp: Mapping[str, Any] | bool | None) -> None:
        if isinstance(amp, bool):
            amp = {"enable": amp}
        amp = dict(amp or {})
        unknown = set(amp) - {"enable", "dtype"}
        if unknown:
            raise ConfigError(f"amp (or fp16) table has unknown keys {sorted(unknown)}; use enable and dtype")
        self.amp_enabled = bool(amp.get("enable", False))
        self.amp_dtype: torch.dtype | None = None
        self.grad_scaler: torch.amp.GradScaler | None = None
        if not self.amp_enabled:
            return
        name = str(amp.get("dtype", "auto"))
        if name == "auto":
            self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        elif name in AMP_DTYPES:
            self.amp_dtype = AMP_DTYPES[name]
        else:
            raise ConfigError(f"amp.dtype must be 'auto', 'bfloat16' or 'float16', got {name!r}")
        if self.amp_dtype == torch.float16:
            if self.device.type != "cuda":
                raise ConfigError("amp.dtype = 'float16' needs a CUDA device; use 'bfloat16' on CPU")
            self.grad_scaler = torch.amp.GradScaler("cuda")

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # -- hooks ------------------------------------------------------------------------------
    def register_hook(self, hook: Hook, priority: int | str | None = None) -> None:
        """Add a hook; hooks run in ascending priority, ties in registration order."""
        if priority is not None:
            hook.priority = get_priority(priority)
        else:
            hook.priority = get_priority(hook.priority)
        self.hooks.append(hook)
        self.hooks.sort(key=lambda h: h.priority)

    def call_hook(self, timepoint: str) -> None:
        if timepoint not in HOOK_TIMEPOINTS:
            raise ValueError(f"unknown hook timepoint {timepoint!r}")
        for hook in self.hooks:
            getattr(hook, timepoint)(self)

    def get_hook(self, hook_type: type) -> Hook | None:
        return next((h for h in self.hooks if isinstance(h, hook_type)), None)

    @property
    def test_dataloader(self) -> Any:
        """The test loader, built from its config table the first time it is needed."""
        if self._test_dataloader is None and self._test_dataloader_cfg is not None:
            self._test_dataloader = self._build_dataloader(self._test_dataloader_cfg, train=False)
        return self._test_dataloader

    @property
    def test_metric(self) -> Any:
        """The evaluation metric bound to the test dataset (built with the test loader)."""
        if self._test_metric is None:
            self._test_metric = self._build_metric(self.test_dataloader)
        return self._test_metric

    @property
    def total_iters(self) -> int:
        return self.max_iters

    # -- training ---------------------------------------------------------------------------
    def train(self) -> None:
        """Run the training loop from the start, from ``resume`` or after ``load_from``."""
        if self.train_dataloader is None or self.optimizer is None:
            raise ConfigError("training needs train_dataloader and optimizer in the config")
        self.load_initial_state()
        self.call_hook("before_run")
        if self._resume_rng is not None:
            set_rng_states(self._resume_rng)
            self._resume_rng = None
        if self.by_epoch:
            while self.epoch < self.max_epochs:
                self._train_epoch()
        else:
            self._train_iterations()
        self.call_hook("after_run")

    def _set_data_epoch(self, epoch: int) -> None:
        loader = self.train_dataloader
        batch_sampler = getattr(loader, "batch_sampler", None)
        for obj in (getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    def _data_iterator(self, data_epoch: int, skip: int = 0) -> Iterator[Any]:
        """Iterator over one pass of the training data, fast-forwarded by ``skip`` batches on resume.

        When resuming mid-pass, the RNG state saved at the start of the pass is used to recreate
        the same order, then the checkpoint's RNG state is put back.
        """
        self._set_data_epoch(data_epoch)
        current = get_rng_states() if skip else None
        if skip and self._resume_data_rng is not None:
            set_rng_states(self._resume_data_rng)
        self._data_epoch_rng = get_rng_states()
        iterator = iter(self.train_dataloader)
        for _ in range(skip):
            next(iterator)
        if current is not None:
            set_rng_states(current)
        self._resume_data_rng = None
        return iterator

    def _train_epoch(self) -> None:
        self.model.train()
        iterator = self._data_iterator(self.epoch)
        self.data_epoch, self.data_position = self.epoch, 0
        self.call_hook("before_train_epoch")
        for i, batch in enumerate(iterator):
            self.inner_iter = i
            self.data_position = i + 1
            self._train_step(batch)
        self.epoch += 1
        self.call_hook("after_train_epoch")

    def _train_iterations(self) -> None:
        self.model.train()
        iterator = self._data_iterator(self.data_epoch, skip=self.data_position)
        self.call_hook("before_train_epoch")
        while self.iter < self.max_iters:
            try:
                batch = next(iterator)
            except StopIteration:
                self.data_epoch += 1
                self.data_position = 0
                iterator = self._data_iterator(self.data_epoch)
                batch = next(iterator)
            self.data_position += 1
            self.inner_iter = self.iter
            self._train_step(batch)
        self.call_hook("after_train_epoch")

    def _to_device(self, batch: Batch) -> Batch:
        """The batch on the runner's device, its images in the model's memory format."""
        batch = batch.to(self.device)
        if self.channels_last and batch.images.dim() == 4:
            batch.images = batch.images.contiguous(memory_format=torch.channels_last)
        return batch

    def _train_step(self, batch: Batch) -> None:
        self.log_vars = {}
        batch = self._to_device(batch)
        self.call_hook("before_train_iter")
        with self._autocast():
            losses = self.model(batch, mode="loss")
        loss, log_vars = parse_losses(losses)
        self._check_finite(log_vars)
        self.outputs = {"loss": loss, "log_vars": log_vars}
        self.log_vars.update(log_vars)
        self.call_hook("after_train_iter")
        self.iter += 1

    def _check_finite(self, log_vars: Mapping[str, float]) -> None:
        """The NaN/inf guard: stop before the optimizer step so no bad weights are ever saved."""
        bad = [(k, v) for k, v in log_vars.items() if "loss" in k and not math.isfinite(v)]
        if not bad:
            return
        key, value = bad[0]
        latest = find_latest_checkpoint(self.work_dir)
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint had been saved yet"
        message = (
            f"loss {key!r} became {value} at iteration {self.iter + 1} (epoch {self.epoch + 1}); training "
            f"stopped before the optimizer step and {kept}. Try a lower learning rate, a longer warmup "
            "or gradient clipping (optimizer_config.grad_clip), and check the annotations."
        )
        self.logger.error(message)
        raise NonFiniteLossError(message)

    # -- checkpoints ------------------------------------------------------------------------
    def make_checkpoint(self, include_optimizer: bool = True, iteration: int | None = None) -> dict[str, Any]:
        """The checkpoint dict of the current state (``iteration`` overrides the completed-iteration count)."""
        classes = getattr(getattr(self.train_dataloader, "dataset", None), "classes", None)
        dump = getattr(self.cfg, "dump", None)
        meta = {
            "epoch": self.epoch,
            "iter": self.iter if iteration is None else iteration,
            "data_epoch": self.data_epoch,
            "data_position": self.data_position,
            "seed": self.seed,
            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "world_size": self.world_size,
            "classes": list(classes) if classes else None,
            "config": dump() if callable(dump) else None,
            "best_metrics": {k: list(v) for k, v in self.best_metrics.items()},
        }
        checkpoint: dict[str, Any] = {"state_dict": self.module.state_dict(), "meta": meta}
        if include_optimizer and self.optimizer is not None:
            checkpoint["optimizer"] = self.optimizer.state_dict()
            checkpoint["scheduler"] = self.scheduler.state_dict()
            if self.grad_scaler is not None:
                checkpoint["scaler"] = self.grad_scaler.state_dict()
            checkpoint["rng"] = get_rng_states()
            if self._data_epoch_rng is not None:
                checkpoint["data_epoch_rng"] = self._data_epoch_rng
            checkpoint["hooks"] = {
                type(h).__name__: h.state_dict() for h in self.hooks if callable(getattr(h, "state_dict", None))
            }
        return checkpoint

    def load_initial_state(self) -> None:
        """Apply ``resume`` (full training state) or else ``load_from`` (weights only); once per runner."""
        if self._initial_state_loaded:
            return
        self._initial_state_loaded = True
        if self.resume_from:
            if self.resume_from is True or self.resume_from == "auto":
                path = find_latest_checkpoint(self.work_dir)
                if path is None:
                    self.logger.warning(f"resume: no checkpoint in {self.work_dir}; training from scratch")
                    return
            else:
                path = Path(self.resume_from)
            self.resume(path)
        elif self.load_from:
            self.load_report = load_weights(self.module, self.load_from)
            self.logger.info(f"loaded weights from {self.load_from}: {self.load_report.describe()}")

    def resume(self, path: str | os.PathLike[str]) -> None:
        """Restore model, optimizer, schedule, loop position, hooks and RNG states from ``path``."""
        checkpoint = load_checkpoint(path, map_location="cpu")
        for key in ("optimizer", "meta"):
            if key not in checkpoint:
                raise CheckpointError(
                    f"checkpoint file {path} has no {key!r} state, so training cannot resume from it; "
                    "use load_from to start from its weights"
                )
        try:
            self.module.load_state_dict(extract_state_dict(checkpoint, path), strict=True)
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"checkpoint file {path} does not fit this model/optimizer: {exc}") from exc
        if "scheduler" in checkpoint:
            self.scheduler.load_state_dict(checkpoint["scheduler"])
        if self.grad_scaler is not None and "scaler" in checkpoint:
            self.grad_scaler.load_state_dict(checkpoint["scaler"])
        meta = checkpoint["meta"]
        self.epoch = int(meta["epoch"])
        self.iter = int(meta["iter"])
        self.data_epoch = int(meta.get("data_epoch", self.epoch))
        self.data_position = int(meta.get("data_position", 0))
        self.best_metrics = {k: tuple(v) for k, v in meta.get("best_metrics", {}).items()}
        hook_states = checkpoint.get("hooks", {})
        for hook in self.hooks:
            state = hook_states.get(type(hook).__name__)
            if state is not None and callable(getattr(hook, "load_state_dict", None)):
                hook.load_state_dict(state)
        self._resume_rng = checkpoint.get("rng")
        self._resume_data_rng = checkpoint.get("data_epoch_rng")
        self.logger.info(f"resumed from {path} at epoch {self.epoch}, iteration {self.iter}")

    # -- evaluation -------------------------------------------------------------------------
    def val(self) -> dict[str, float]:
        """Evaluate on the validation data with the validation hooks; stores ``val_metrics``."""
        if self.val_dataloader is None or self.val_metric is None:
            raise ConfigError("validation needs val_dataloader and an evaluation table in the config")
        self.call_hook("before_val_epoch")
        self.val_metrics = self._evaluate(self.val_dataloader, self.val_metric, call_hooks=True)
        self.val_round += 1
        self.call_hook("after_val_epoch")
        return self.val_metrics

    def test(self, predictions_out: list[dict[str, Any]] | None = None) -> dict[str, float]:
        """Evaluate on the test data; per-image predictions are appended to ``predictions_out`` if given."""
        if self.test_dataloader is None or self.test_metric is None:
            raise ConfigError("testing needs test_dataloader and an evaluation table in the config")
        self.test_metrics = self._evaluate(self.test_dataloader, self.test_metric, False, predictions_out)
        if is_main_process():
            shown = ", ".join(f"{k}: {v:.4f}" for k, v in self.test_metrics.items())
            self.logger.info(f"test results: {shown}")
        return self.test_metrics

    def predict(self, batch: Batch) -> list[Instances]:
        """Predictions of the (unwrapped) model for one batch, on CPU in float32."""
        with torch.inference_mode(), self._autocast():
            return _as_float32(self.module.predict(self._to_device(batch), rescale=True))

    def _evaluate(
        self,
        loader: Any,
        metric: Any,
        call_hooks: bool,
        predictions_out: list[dict[str, Any]] | None = None,
    ) -> dict[str, float]:
        was_training = self.model.training
        self.module.eval()
        metric.reset()
        collected: list[dict[str, Any]] = []
        for batch in loader:
            if call_hooks:
                self.call_hook("before_val_iter")
            predictions = self.predict(batch)
            metric.process(batch, predictions)
            if predictions_out is not None:
                for meta, inst in zip(batch.metas, predictions):
                    arrays = inst.numpy()
                    collected.append(
                        {
                            "image_id": meta.image_id,
                            "file_name": meta.file_name,
                            **{k: arrays[k].tolist() for k in ("boxes", "scores", "labels") if k in arrays},
                        }
                    )
            if call_hooks:
                self.call_hook("after_val_iter")
        if predictions_out is not None:
            for part in all_gather_object(collected):
                predictions_out.extend(part)
        results = self._compute_metric(metric)
        if was_training:
            self.model.train()
        return results

    def _compute_metric(self, metric: Any) -> dict[str, float]:
        """Compute on rank 0 after gathering every rank's ``metric.results``; broadcast the numbers."""
        if not is_distributed():
            return dict(metric.compute())
        if hasattr(metric, "results"):
            parts = all_gather_object(metric.results)
            results: dict[str, float] = {}
            if is_main_process():
                metric.results = [r for part in parts for r in part]
                results = dict(metric.compute())
            return broadcast_object(results)
        self.logger.warning(f"{type(metric).__name__} has no 'results' list; using rank 0's shard only")
        return broadcast_object(dict(metric.compute()))
