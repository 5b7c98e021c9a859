"""The loops: epoch- and iteration-based training, and the evaluation pass of val and test.

A training iteration is forward -> loss sum -> NaN guard -> backward and optimizer step
(:class:`detcore.engine.optim.GradientStep`), with the hooks called at the timepoints of the
MMDetection paper (`000` §3.2) around it. The loops read and advance the counters the hooks
see on the runner (``epoch``, ``iter``, ``inner_iter``, ``data_epoch``, ``data_position``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from detcore.engine.checkpoint import find_latest_checkpoint
from detcore.engine.dist import get_world_size, is_distributed, is_main_process
from detcore.engine.evaluation import as_float32, compute_metric
from detcore.engine.progress import Progress
from detcore.engine.seeding import get_rng_states, set_rng_states
from detcore.errors import ConfigError, DetcoreError
from detcore.structures import Batch, Instances

if TYPE_CHECKING:
    from detcore.engine.runner import Runner

# A test-time-augmentation batch is one Batch per view (see detcore.data.loader.collate_samples).
AnyBatch = Batch | Sequence[Batch]
PredictionSink = Callable[[Batch, list[Instances]], None]


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


class TrainLoop:
    """What both training loops share: resumable passes over the data and one training step."""

    def __init__(self, runner: "Runner") -> None:
        self.runner = runner
        self.data_epoch_rng: dict[str, Any] | None = None  # RNG state at the start of the current pass
        self.resume_data_rng: dict[str, Any] | None = None  # that state, read from a checkpoint

    def run(self) -> None:
        raise NotImplementedError

    def _set_data_epoch(self, epoch: int) -> None:
        loader = self.runner.train_dataloader
        batch_sampler = getattr(loader, "batch_sampler", None)
        for obj in (getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    def data_iterator(self, data_epoch: int, skip: int = 0) -> Iterator[Any]:
        """Iterator over one pass of the training data, fast-forwarded by ``skip`` batches on resume.

        When resuming mid-pass, the RNG state saved at the start of the pass is used to recreate
        the same order, then the checkpoint's RNG state is put back.
        """
        self._set_data_epoch(data_epoch)
        current = get_rng_states() if skip else None
        if skip and self.resume_data_rng is not None:
            set_rng_states(self.resume_data_rng)
        self.data_epoch_rng = get_rng_states()
        iterator = iter(self.runner.train_dataloader)
        for _ in range(skip):
            next(iterator)
        if current is not None:
            set_rng_states(current)
        self.resume_data_rng = None
        return iterator

    def train_step(self, batch: Batch) -> None:
        """Forward, loss, NaN guard, backward and optimizer step, with the iteration's hooks around."""
        runner = self.runner
        runner.log_vars = {}
        batch = runner.to_device(batch)
        runner.call_hook("before_train_iter")
        with runner.amp.autocast():
            losses = runner.model(batch, mode="loss")
        loss, log_vars = parse_losses(losses)
        self.check_finite(log_vars)
        log_vars.update(runner.gradient_step(loss))
        runner.outputs = {"loss": loss.detach(), "log_vars": log_vars}
        runner.log_vars.update(log_vars)
        runner.call_hook("after_train_iter")
        runner.iter += 1

    def check_finite(self, log_vars: Mapping[str, float]) -> None:
        """The NaN/inf guard: stop before the optimizer step so no bad weights are ever saved."""
        bad = [(k, v) for k, v in log_vars.items() if "loss" in k and not math.isfinite(v)]
        if not bad:
            return
        runner = self.runner
        key, value = bad[0]
        latest = find_latest_checkpoint(runner.work_dir)
        kept = f"the last good checkpoint is {latest}" if latest else "no checkpoint had been saved yet"
        message = (
            f"loss {key!r} became {value} at iteration {runner.iter + 1} (epoch {runner.epoch + 1}); training "
            f"stopped before the optimizer step and {kept}. Try a lower learning rate, a longer warmup "
            "or gradient clipping (optimizer_config.grad_clip), and check the annotations."
        )
        runner.logger.error(message)
        raise NonFiniteLossError(message)


class EpochBasedTrainLoop(TrainLoop):
    """``max_epochs`` passes over the training data; ``epoch`` counts completed passes."""

    def run(self) -> None:
        runner = self.runner
        while runner.epoch < runner.max_epochs:
            runner.model.train()
            iterator = self.data_iterator(runner.epoch)
            runner.data_epoch, runner.data_position = runner.epoch, 0
            runner.call_hook("before_train_epoch")
            for i, batch in enumerate(iterator):
                runner.inner_iter = i
                runner.data_position = i + 1
                self.train_step(batch)
            runner.epoch += 1
            runner.call_hook("after_train_epoch")


class IterBasedTrainLoop(TrainLoop):
    """``max_iters`` iterations, restarting the data when a pass ends (one train "epoch" of hooks)."""

    def run(self) -> None:
        runner = self.runner
        runner.model.train()
        iterator = self.data_iterator(runner.data_epoch, skip=runner.data_position)
        runner.call_hook("before_train_epoch")
        while runner.iter < runner.max_iters:
            try:
                batch = next(iterator)
            except StopIteration:
                runner.data_epoch += 1
                runner.data_position = 0
                iterator = self.data_iterator(runner.data_epoch)
                batch = next(iterator)
            runner.data_position += 1
            runner.inner_iter = runner.iter
            self.train_step(batch)
        runner.call_hook("after_train_epoch")


def first_view(batch: AnyBatch) -> Batch:
    """The batch itself, or the first view of a test-time-augmentation batch (image ids, shapes)."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


@dataclass(frozen=True)
class Throughput:
    """Images predicted and the wall time from the first batch request to the last prediction (data loading,
    the network and post-processing; not the metric)."""

    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.images} images in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s)"


class EvalLoop:
    """One pass over val or test data: predictions (merged over TTA views) to the metric and the sinks.

    A loader item that is a list of batches (``MultiScaleFlipAug``) goes to ``Detector.predict_tta``;
    the metric and each sink get the first view's batch (image ids, original shapes) and the
    merged predictions. ``call_hooks`` runs the ``*_val_iter`` timepoints (validation, not test).
    """

    def __init__(
        self,
        runner: "Runner",
        loader: Any,
        metric: Any,
        call_hooks: bool = False,
        sinks: Sequence[PredictionSink] = (),
        progress: bool = False,
    ) -> None:
        self.runner = runner
        self.loader = loader
        self.metric = metric
        self.call_hooks = call_hooks
        self.sinks = list(sinks)
        self.progress = progress

    def run(self) -> dict[str, float]:
        runner = self.runner
        was_training = runner.model.training
        runner.module.eval()
        self.metric.reset()
        total = len(getattr(self.loader, "dataset", ())) // max(get_world_size(), 1) or None
        bar = Progress(total, "test", enabled=self.progress and is_main_process())
        images, start = 0, time.perf_counter()
        for batch in self.loader:
            if self.call_hooks:
                runner.call_hook("before_val_iter")
            predictions = runner.predict(batch)
            self.metric.process(first_view(batch), predictions)
            for sink in self.sinks:
                sink(first_view(batch), predictions)
            if self.call_hooks:
                runner.call_hook("after_val_iter")
            bar.update(len(first_view(batch).metas))
            images += len(first_view(batch).metas)
        bar.close()
        seconds = time.perf_counter() - start
        self.throughput = Throughput(images, seconds)
        runner.logger.info(f"predicted {self.throughput}")
        results = compute_metric(self.metric, runner.logger)
        if was_training:
            runner.model.train()
        return results


def predict_batch(runner: "Runner", batch: AnyBatch) -> list[Instances]:
    """Predictions of the unwrapped model for a batch or a TTA list of batches, on CPU in float32."""
    with torch.inference_mode(), runner.amp.autocast():
        if isinstance(batch, (list, tuple)):
            predictions = runner.module.predict_tta([runner.to_device(view) for view in batch])
        else:
            predictions = runner.module.predict(runner.to_device(batch), rescale=True)
    return as_float32(predictions)
