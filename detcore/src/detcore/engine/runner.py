"""The runner wires one run together: processes and device, model, data, optimizer, schedule, hooks.

The work itself lives in modules of its own: config keys in :mod:`~detcore.engine.settings`, the
training and evaluation loops (which own backward and the optimizer step) in
:mod:`~detcore.engine.loops`, mixed precision in :mod:`~detcore.engine.amp`, what a checkpoint
holds in :mod:`~detcore.engine.state`, distributed metrics in :mod:`~detcore.engine.evaluation`,
``--out`` / ``--show-dir`` outputs in :mod:`~detcore.engine.outputs`. Hooks (lr schedule,
timing, checkpoints, evaluation, logging) see the runner through
:class:`~detcore.engine.protocol.RunnerProtocol`.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detcore.engine.amp import MixedPrecision
from detcore.checkpoint import remove_stale_temporaries
from detcore.engine.checkpoint import LoadReport, load_weights
from detcore.engine.components import build_component, build_hook, build_loader, loader_batch_size
from detcore.engine.dist import broadcast_object, get_rank, get_world_size, init_distributed, is_distributed
from detcore.engine.dist import is_main_process
from detcore.engine.device import resolve_device
from detcore.engine.evaluation import build_metric
from detcore.engine.hooks import CheckpointHook, EvalHook, IterTimerHook, LoggerHook, LrSchedulerHook, get_priority
from detcore.engine.loops import AnyBatch, EpochBasedTrainLoop, EvalLoop, IterBasedTrainLoop, TrainLoop
from detcore.engine.loops import predict_batch
from detcore.engine.optim import GradientStep, build_optimizer
from detcore.engine.outputs import PredictionDrawer, PredictionRecords
from detcore.engine.schedulers import LrScheduler, build_lr_scheduler
from detcore.engine.seeding import set_random_seed, set_rng_states
from detcore.engine.settings import LoopSettings, RunnerSettings, resolve_pipelines
from detcore.engine.state import make_checkpoint, restore_checkpoint, resume_path
from detcore.engine.validation import check_num_classes, validate_config
from detcore.errors import ConfigError, DetcoreError
from detcore.interfaces import HOOK_TIMEPOINTS, Hook
from detcore.structures import Batch, Instances

__all__ = ["Runner", "resolve_pipelines"]  # resolve_pipelines: its former home, still imported from here


class Runner:
    """Owns the model, data, optimizer, schedule and hooks of one run; ``train()``, ``val()``, ``test()``.

    Keyword settings are the config keys of :class:`~detcore.engine.settings.RunnerSettings`;
    each may be a config table (built through the registry) or an object.
    """

    def __init__(
        self,
        model: nn.Module | Mapping[str, Any],
        work_dir: str | os.PathLike[str],
        launcher: str = "none",
        cfg: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        s = self.settings = RunnerSettings.create(model=model, work_dir=work_dir, **settings)
        validate_config({k: v for k, v in {"model": model, **settings}.items() if v is not None})
        self.cfg = cfg
        # -- processes, device, seed ------------------------------------------------------
        if launcher not in ("none", "torchrun"):
            raise ConfigError(f"unknown launcher {launcher!r}; use 'none' or 'torchrun'")
        if launcher == "torchrun":
            self.device = init_distributed("torchrun")
        else:
            self.device = resolve_device(s.device)
        self.rank, self.world_size = get_rank(), get_world_size()
        seed = s.seed if s.seed is not None else broadcast_object(random.SystemRandom().randrange(2**31))
        self.seed = int(seed)
        set_random_seed(self.seed, s.deterministic)
        # -- work dir and logging ---------------------------------------------------------
        self.work_dir = Path(work_dir)
        if is_main_process():
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self.timestamp = broadcast_object(time.strftime("%Y%m%d_%H%M%S"))
        self.logger = self._make_logger()
        if is_main_process():
            for stale in remove_stale_temporaries(self.work_dir):
                self.logger.info(f"removed {stale.name}, the partial file of a save that did not finish")
        try:
            self._build(s)
        except BaseException as exc:
            self.log_failure(exc)
            self.close()
            raise

    def _build(self, s: RunnerSettings) -> None:
        """Everything the run needs, built from the settings (a failure is written to the log)."""
        # -- model, data, metrics ---------------------------------------------------------
        model = s.model
        self.module: nn.Module = build_component("detectors", model).to(self.device)
        self.channels_last = s.channels_last
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        self.train_dataloader = build_loader(s.train_dataloader, True, self.seed, is_distributed())
        if self.train_dataloader is not None:
            check_num_classes(model, getattr(self.train_dataloader.dataset, "classes", None), self.cfg)
        self.val_dataloader = build_loader(s.val_dataloader, False, self.seed, is_distributed())
        for loader in (self.train_dataloader, self.val_dataloader):
            self._report_skips(loader)
        self.evaluation_cfg = dict(s.evaluation or {})
        self.val_metric = build_metric(self.evaluation_cfg, self.val_dataloader)
        self._test_dataloader: Any = None  # built on first use: training runs never pay for it
        self._test_metric: Any = None
        # -- loop length --------------------------------------------------------------------
        loop = LoopSettings.from_table(s.runner)
        self.by_epoch, self.max_epochs = loop.by_epoch, loop.max_epochs
        self.iters_per_epoch = len(self.train_dataloader) if self.train_dataloader is not None else 0
        self.max_iters = self.max_epochs * self.iters_per_epoch if loop.by_epoch else int(loop.max_iters)
        # -- optimization -----------------------------------------------------------------
        self.amp = MixedPrecision(s.amp, self.device)
        self.optimizer: torch.optim.Optimizer | None = None
        if s.optimizer is not None and self.train_dataloader is not None:
            self.optimizer = s.optimizer
            if isinstance(s.optimizer, Mapping):
                scaling = dict(s.auto_scale_lr or {})
                total = loader_batch_size(self.train_dataloader) * self.world_size if scaling.get("enable") else None
                self.optimizer = build_optimizer(self.module, s.optimizer, total, scaling)
        self.gradient_step = (
            GradientStep.from_config(self.optimizer, s.optimizer_config, self.amp.grad_scaler)
            if self.optimizer is not None
            else None
        )
        self.scheduler = s.lr_config if isinstance(s.lr_config, LrScheduler) else build_lr_scheduler(
            dict(s.lr_config) if s.lr_config is not None else None
        )
        self.model: nn.Module = self.module
        if is_distributed():
            self.model = nn.parallel.DistributedDataParallel(
                self.module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=s.find_unused_parameters,
            )
        self.train_loop: TrainLoop | None = None
        if self.train_dataloader is not None:
            self.train_loop = EpochBasedTrainLoop(self) if self.by_epoch else IterBasedTrainLoop(self)
        # -- state the loops advance and the hooks read -----------------------------------------
        self.epoch = 0  # completed epochs (0-based index of the running epoch)
        self.iter = 0  # completed iterations
        self.inner_iter = 0
        self.data_epoch = 0  # passes over the training data started (iteration-based loop)
        self.data_position = 0  # batches consumed in the current pass
        self.log_vars: dict[str, float] = {}
        self.outputs: dict[str, Any] = {}
        self.val_metrics: dict[str, float] = {}
        self.val_round = 0
        self.best_metrics: dict[str, tuple[float, int, int]] = {}
        self.test_metrics: dict[str, float] = {}
        self.load_report: LoadReport | None = None
        self._resume_rng: dict[str, Any] | None = None
        self._initial_state_loaded = False
        # -- hooks ------------------------------------------------------------------------
        self.hooks: list[Hook] = []
        self.register_hook(LrSchedulerHook())
        self.register_hook(IterTimerHook())
        self.register_hook(CheckpointHook(**{"by_epoch": self.by_epoch, **dict(s.checkpoint or {})}))
        self.register_hook(LoggerHook(**dict(s.log or {})))
        if self.val_dataloader is not None and self.val_metric is not None:
            self.register_hook(EvalHook(interval=int(self.evaluation_cfg.get("interval", 1)), by_epoch=self.by_epoch))
        for hook_cfg in s.custom_hooks:
            self.register_hook(*build_hook(hook_cfg))

    @classmethod
    def from_config(
        cls, cfg: Mapping[str, Any], work_dir: str | os.PathLike[str] | None = None, launcher: str = "none"
    ) -> "Runner":
        """Build a runner from a loaded config (keys: :class:`~detcore.engine.settings.RunnerSettings`)."""
        validate_config(cfg)
        values = vars(RunnerSettings.from_config(cfg))
        values["work_dir"] = work_dir or values["work_dir"]
        if not values["work_dir"]:
            raise ConfigError("no work_dir: set work_dir in the config or pass --work-dir")
        if values["model"] is None:
            raise ConfigError("the config has no model table")
        return cls(launcher=launcher, cfg=cfg, **values)

    # -- logging ------------------------------------------------------------------------------
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

    def log_failure(self, exc: BaseException) -> None:
        """Write why the run stopped to the log file (a user error as its message, anything else with
        its traceback), so that a failed run's log says what happened. The terminal gets the CLI's
        one paragraph (or Python's traceback), not a second copy."""
        if isinstance(exc, KeyboardInterrupt):
            text, exc_info = "interrupted", None
        elif isinstance(exc, DetcoreError):
            text, exc_info = f"{type(exc).__name__}: {exc}", None
        elif isinstance(exc, Exception):
            text, exc_info = f"run failed: {type(exc).__name__}: {exc}", (type(exc), exc, exc.__traceback__)
        else:
            return
        record = self.logger.makeRecord(self.logger.name, logging.ERROR, __file__, 0, text, None, exc_info)
        for handler in self.logger.handlers:
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)

    def _report_skips(self, loader: Any) -> None:
        """Log every image a loader with ``on_bad_image = "skip"`` leaves out."""
        if loader is not None and hasattr(loader, "skipped"):
            loader.on_skip = lambda message: self.logger.warning(
                f"skipped an image ({len(loader.skipped)} so far): {message}")

    def close(self) -> None:
        """Release the log files (the runner stays usable for inspection)."""
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hooks ------------------------------------------------------------------------------
    def register_hook(self, hook: Hook, priority: int | str | None = None) -> None:
        """Add a hook; hooks run in ascending priority, ties in registration order."""
        hook.priority = get_priority(priority if priority is not None else hook.priority)
        self.hooks.append(hook)
        self.hooks.sort(key=lambda h: h.priority)

    def call_hook(self, timepoint: str) -> None:
        if timepoint not in HOOK_TIMEPOINTS:
            raise ValueError(f"unknown hook timepoint {timepoint!r}")
        for hook in self.hooks:
            getattr(hook, timepoint)(self)

    def get_hook(self, hook_type: type) -> Hook | None:
        return next((h for h in self.hooks if isinstance(h, hook_type)), None)

    # -- parts built on demand ----------------------------------------------------------------
    @property
    def test_dataloader(self) -> Any:
        """The test loader, built from its config table the first time it is needed."""
        if self._test_dataloader is None and self.settings.test_dataloader is not None:
            self._test_dataloader = build_loader(self.settings.test_dataloader, False, self.seed, is_distributed())
            self._report_skips(self._test_dataloader)
        return self._test_dataloader

    @property
    def test_metric(self) -> Any:
        """The evaluation metric bound to the test dataset (built with the test loader)."""
        if self._test_metric is None:
            self._test_metric = build_metric(self.evaluation_cfg, self.test_dataloader)
        return self._test_metric

    @property
    def total_iters(self) -> int:
        return self.max_iters

    @property
    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """The fp16 loss scaler (None without fp16 mixed precision)."""
        return self.amp.grad_scaler

    def to_device(self, batch: Batch) -> Batch:
        """The batch on the runner's device, its images in the model's memory format."""
        batch = batch.to(self.device)
        if self.channels_last and batch.images.dim() == 4:
            batch.images = batch.images.contiguous(memory_format=torch.channels_last)
        return batch

    # -- training ---------------------------------------------------------------------------
    def train(self) -> None:
        """Run the training loop from the start, from ``resume`` or after ``load_from``."""
        if self.train_loop is None or self.optimizer is None:
            raise ConfigError("training needs train_dataloader and optimizer in the config")
        try:
            self.load_initial_state()
            self.call_hook("before_run")
            if self._resume_rng is not None:
                set_rng_states(self._resume_rng)
                self._resume_rng = None
            self.train_loop.run()
        except BaseException as exc:
            self.log_failure(exc)
            raise
        skipped = getattr(self.train_dataloader, "skipped", [])
        if skipped:
            self.logger.warning(f"{len(skipped)} training image(s) could not be read and were skipped "
                                "(on_bad_image = 'skip'); see the warnings above")
        self.call_hook("after_run")

    # -- checkpoints ------------------------------------------------------------------------
    def make_checkpoint(self, include_optimizer: bool = True, iteration: int | None = None) -> dict[str, Any]:
        """The checkpoint dict of the current state (``iteration`` overrides the completed-iteration count)."""
        return make_checkpoint(self, include_optimizer, iteration)

    def load_initial_state(self) -> None:
        """Apply ``resume`` (full training state) or else ``load_from`` (weights only); once per runner."""
        if self._initial_state_loaded:
            return
        self._initial_state_loaded = True
        if self.settings.resume:
            path = resume_path(self.settings.resume, self.work_dir)
            if path is None:
                self.logger.warning(f"resume: no checkpoint in {self.work_dir}; training from scratch")
                return
            self.resume(path)
        elif self.settings.load_from:
            self.load_report = load_weights(self.module, self.settings.load_from)
            log = self.logger.info if self.load_report.fits else self.logger.warning
            log(f"loaded weights from {self.settings.load_from} (load_from: fine-tuning, mis-shaped and missing "
                f"weights keep their initialisation): {self.load_report.describe()}")

    def resume(self, path: str | os.PathLike[str]) -> None:
        """Restore model, optimizer, schedule, loop position, hooks and RNG states from ``path``."""
        self._resume_rng = restore_checkpoint(self, path)
        self.logger.info(f"resumed from {path} at epoch {self.epoch}, iteration {self.iter}")

    # -- evaluation -------------------------------------------------------------------------
    def val(self) -> dict[str, float]:
        """Evaluate on the validation data with the validation hooks; stores ``val_metrics``."""
        if self.val_dataloader is None or self.val_metric is None:
            raise ConfigError("validation needs val_dataloader and an evaluation table in the config")
        self.call_hook("before_val_epoch")
        self.val_metrics = EvalLoop(self, self.val_dataloader, self.val_metric, call_hooks=True).run()
        self.val_round += 1
        self.call_hook("after_val_epoch")
        return self.val_metrics

    def test(
        self,
        predictions_out: list[dict[str, Any]] | None = None,
        show_dir: str | os.PathLike[str] | None = None,
        show_score_thr: float = 0.3,
        progress: bool = False,
    ) -> dict[str, float]:
        """Evaluate on the test data (test-time augmentation when its pipeline gives views).

        Per-image prediction records are appended to ``predictions_out`` when given (every
        rank's); with ``show_dir`` each image's predictions above ``show_score_thr`` are drawn
        to ``show_dir/<image stem>.png``.
        """
        if self.test_dataloader is None or self.test_metric is None:
            raise ConfigError("testing needs test_dataloader and an evaluation table in the config")
        records = PredictionRecords() if predictions_out is not None else None
        sinks: list[Any] = [records] if records is not None else []
        if show_dir is not None:
            classes = getattr(self.test_dataloader.dataset, "classes", None)
            sinks.append(PredictionDrawer(show_dir, classes, show_score_thr))
        loop = EvalLoop(self, self.test_dataloader, self.test_metric, sinks=sinks, progress=progress)
        self.test_metrics = loop.run()
        self.test_throughput = loop.throughput
        if records is not None:
            predictions_out.extend(records.gathered())
        if is_main_process():
            summary = getattr(self.test_metric, "summary_text", "")
            if summary:
                self.logger.info(f"summary:\n{summary}")
            shown = ", ".join(f"{k}: {v:.4f}" for k, v in self.test_metrics.items())
            self.logger.info(f"test results: {shown}")
        return self.test_metrics

    def predict(self, batch: AnyBatch) -> list[Instances]:
        """Predictions of the (unwrapped) model for a batch, or merged over a TTA list of batches."""
        return predict_batch(self, batch)
