"""Training engine: the runner and its loops, settings, mixed precision, checkpoint state, evaluation,
optimizers, lr schedules, checkpoints and distributed helpers."""

from detcore.engine.checkpoint import (
    LoadReport,
    find_latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from detcore.engine.amp import MixedPrecision
from detcore.engine.loops import (
    EpochBasedTrainLoop,
    EvalLoop,
    IterBasedTrainLoop,
    NonFiniteLossError,
    TrainLoop,
    parse_losses,
)
from detcore.engine.optim import GradientStep, build_optimizer, param_groups, scale_lr
from detcore.engine.protocol import RunnerProtocol
from detcore.engine.runner import Runner
from detcore.engine.schedulers import (
    CosineLrScheduler,
    FixedLrScheduler,
    LrScheduler,
    MultiStepLrScheduler,
    StepLrScheduler,
    build_lr_scheduler,
)
from detcore.engine.seeding import set_random_seed
from detcore.engine.settings import LoopSettings, RunnerSettings, resolve_pipelines

__all__ = [
    "CosineLrScheduler", "EpochBasedTrainLoop", "EvalLoop", "FixedLrScheduler", "GradientStep",
    "IterBasedTrainLoop", "LoadReport", "LoopSettings", "LrScheduler", "MixedPrecision", "MultiStepLrScheduler",
    "NonFiniteLossError", "Runner", "RunnerProtocol", "RunnerSettings", "StepLrScheduler", "TrainLoop",
    "build_lr_scheduler", "build_optimizer",
    "find_latest_checkpoint", "load_checkpoint", "load_weights", "param_groups", "parse_losses",
    "resolve_pipelines", "save_checkpoint", "scale_lr", "set_random_seed",
]
