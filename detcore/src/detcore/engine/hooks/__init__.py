"""The runner's built-in hooks (registered by default) and the priority scale.

Backward and the optimizer step are not a hook: the training loop owns them (``detcore.engine.loops``).
"""

from detcore.engine.hooks.checkpoint import CheckpointHook
from detcore.engine.hooks.evaluation import EvalHook
from detcore.engine.hooks.logger import LoggerHook
from detcore.engine.hooks.lr_scheduler import LrSchedulerHook
from detcore.engine.hooks.priority import PRIORITIES, get_priority
from detcore.engine.hooks.timer import IterTimerHook

__all__ = [
    "PRIORITIES", "CheckpointHook", "EvalHook", "IterTimerHook", "LoggerHook", "LrSchedulerHook",
    "get_priority",
]
