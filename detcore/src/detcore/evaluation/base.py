"""BaseMetric: per-image result records in ``results`` (gathered across ranks by the runner)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Sequence

from detcore.interfaces import Metric


class BaseMetric(Metric):
    """Keeps one record per image in ``results``; ``compute`` reduces the records to numbers.

    The runner concatenates every rank's ``results`` on rank 0 before ``compute``, so records
    must be small picklable values (numpy arrays, RLE strings), never images.
    """

    def __init__(self, dataset: Any = None) -> None:
        self.results: list[dict[str, Any]] = []
        self.dataset = None
        if dataset is not None:
            self.bind(dataset)

    def bind(self, dataset: Any) -> None:
        """Attach the dataset whose annotations are the ground truth."""
        self.dataset = dataset

    def reset(self) -> None:
        self.results = []

    def unique_results(self) -> list[dict[str, Any]]:
        """``results`` with one record per ``image_id`` (distributed samplers may repeat images)."""
        seen: set[Any] = set()
        unique = []
        for record in self.results:
            if record["image_id"] in seen:
                continue
            seen.add(record["image_id"])
            unique.append(record)
        return unique

    @abstractmethod
    def process(self, batch: Any, predictions: Sequence[Any]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...
