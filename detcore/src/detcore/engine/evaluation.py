"""Evaluation across processes: the metric built from ``evaluation``, and its results gathered to
rank 0, whose numbers every rank receives."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from detcore.engine.dist import all_gather_object, broadcast_object, is_distributed, is_main_process
from detcore.structures import Instances


def build_metric(evaluation: Mapping[str, Any] | None, loader: Any) -> Any:
    """The metric of the ``evaluation`` table (default "CocoMetric"), bound to ``loader``'s dataset.

    None when there is no loader or no evaluation table. ``interval`` belongs to the EvalHook.
    """
    if loader is None or not evaluation:
        return None
    from detcore.registry import build

    metric_cfg = {k: v for k, v in evaluation.items() if k != "interval"}
    metric_cfg.setdefault("type", "CocoMetric")
    metric = build("metrics", metric_cfg)
    dataset = getattr(loader, "dataset", None)
    if dataset is not None and hasattr(metric, "bind"):
        metric.bind(dataset)
    return metric


def as_float32(predictions: Sequence[Instances]) -> list[Instances]:
    """Predictions on CPU with floating fields in float32 (mixed precision may give bf16/fp16)."""
    out = []
    for inst in predictions:
        inst = inst.to("cpu")
        for name, value in inst.fields().items():
            if isinstance(value, Tensor) and value.is_floating_point() and value.dtype != torch.float32:
                inst.set(name, value.float())
        out.append(inst)
    return out


def compute_metric(metric: Any, logger: logging.Logger) -> dict[str, float]:
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
    logger.warning(f"{type(metric).__name__} has no 'results' list; using rank 0's shard only")
    return broadcast_object(dict(metric.compute()))
