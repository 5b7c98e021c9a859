"""Abstract bases of the engine side: runner hooks and evaluation metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from detcore.engine.protocol import RunnerProtocol

# The ten timepoints of the training pipeline (MMDetection paper `000` §3.2).
HOOK_TIMEPOINTS = (
    "before_run",
    "before_train_epoch",
    "before_train_iter",
    "after_train_iter",
    "after_train_epoch",
    "before_val_epoch",
    "before_val_iter",
    "after_val_iter",
    "after_val_epoch",
    "after_run",
)


class Hook:
    """Code the runner calls at its timepoints; override the ones you need.

    ``priority``: lower runs first (0 highest .. 100 lowest; 50 normal). ``runner`` is what
    :class:`~detcore.engine.protocol.RunnerProtocol` lists.
    """

    priority: int = 50

    def before_run(self, runner: RunnerProtocol) -> None: ...
    def after_run(self, runner: RunnerProtocol) -> None: ...
    def before_train_epoch(self, runner: RunnerProtocol) -> None: ...
    def after_train_epoch(self, runner: RunnerProtocol) -> None: ...
    def before_train_iter(self, runner: RunnerProtocol) -> None: ...
    def after_train_iter(self, runner: RunnerProtocol) -> None: ...
    def before_val_epoch(self, runner: RunnerProtocol) -> None: ...
    def after_val_epoch(self, runner: RunnerProtocol) -> None: ...
    def before_val_iter(self, runner: RunnerProtocol) -> None: ...
    def after_val_iter(self, runner: RunnerProtocol) -> None: ...


class Metric(ABC):
    """Accumulates predictions batch by batch, then computes named scalar results."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def process(self, batch: Any, predictions: Sequence[Any]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...
