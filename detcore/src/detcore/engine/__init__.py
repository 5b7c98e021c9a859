"""Training engine: the hook-driven runner, optimizers, lr schedules, checkpoints, distributed helpers."""

from detcore.engine.checkpoint import (
    LoadReport,
    find_latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from detcore.engine.optim import build_optimizer, param_groups, scale_lr
from detcore.engine.runner import NonFiniteLossError, Runner, parse_losses, resolve_pipelines
from detcore.engine.schedulers import (
    CosineLrScheduler,
    FixedLrScheduler,
    LrScheduler,
    MultiStepLrScheduler,
    StepLrScheduler,
    build_lr_scheduler,
)
from detcore.engine.seeding import set_random_seed

__all__ = [
    "CosineLrScheduler", "FixedLrScheduler", "LoadReport", "LrScheduler", "MultiStepLrScheduler",
    "NonFiniteLossError", "Runner", "StepLrScheduler", "build_lr_scheduler", "build_optimizer",
    "find_latest_checkpoint", "load_checkpoint", "load_weights", "param_groups", "parse_losses",
    "resolve_pipelines", "save_checkpoint", "scale_lr", "set_random_seed",
]
