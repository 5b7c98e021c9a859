"""Abstract bases every detcore component implements (see `000` §3.1 and `003` §4)."""

from detcore.interfaces.data import Dataset, Transform
from detcore.interfaces.engine import HOOK_TIMEPOINTS, Hook, Metric
from detcore.interfaces.models import (
    Backbone,
    BBoxHead,
    DenseHead,
    Detector,
    MaskHead,
    Neck,
    RoIExtractor,
    RoIHead,
)
from detcore.interfaces.training import (
    AssignResult,
    Assigner,
    BoxCoder,
    Loss,
    PriorGenerator,
    Sampler,
    SamplingResult,
)

__all__ = [
    "HOOK_TIMEPOINTS", "AssignResult", "Assigner", "BBoxHead", "Backbone", "BoxCoder", "Dataset",
    "DenseHead", "Detector", "Hook", "Loss", "MaskHead", "Metric", "Neck", "PriorGenerator",
    "RoIExtractor", "RoIHead", "Sampler", "SamplingResult", "Transform",
]
