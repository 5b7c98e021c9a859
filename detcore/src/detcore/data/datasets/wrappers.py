"""Dataset wrappers: several datasets as one, a dataset repeated, class-balanced repetition.

They are what MMDetection's ``ConcatDataset``, ``RepeatDataset`` and ``ClassBalancedDataset`` do:
VOC07+12 training concatenates two trainval sets and repeats them three times per epoch; LVIS
training repeats images of rare categories (Gupta et al., LVIS, repeat factor sampling). Each
wrapper takes its inner datasets as config tables (built through the registry) or as built objects,
and exposes ``classes``, ``flags`` (aspect-ratio groups), ``get_data_info`` and ``get_ann_info``
like a plain dataset, so samplers and metrics work unchanged.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detcore.data.samplers import aspect_ratio_flags
from detcore.errors import ConfigError, DataError
from detcore.interfaces import Dataset


def _build_inner(cfg: Mapping[str, Any] | Dataset, where: str) -> Dataset:
    """An inner dataset from its config table (or as given when already built)."""
    if isinstance(cfg, Mapping):
        if "type" not in cfg:
            raise ConfigError(f"{where} needs a 'type' (e.g. 'CocoDataset'), got keys {sorted(cfg)}")
        from detcore.registry import build

        return build("datasets", cfg)
    if not hasattr(cfg, "__len__") or not hasattr(cfg, "__getitem__"):
        raise ConfigError(f"{where} must be a dataset table or a dataset, got {type(cfg).__name__}")
    return cfg


def _ann_info(dataset: Any, index: int) -> dict[str, Any]:
    """Annotations of image ``index``: ``get_ann_info`` when the dataset has it, else its record's ``ann``."""
    if hasattr(dataset, "get_ann_info"):
        return dataset.get_ann_info(index)
    return dataset.get_data_info(index)["ann"]


class ConcatDataset(Dataset):
    """The images of several datasets in order; they must have the same classes in the same order."""

    def __init__(self, datasets: Sequence[Mapping[str, Any] | Dataset]) -> None:
        if isinstance(datasets, (str, bytes, Mapping)) or not datasets:
            raise ConfigError("ConcatDataset.datasets must be a non-empty list of dataset tables")
        self.datasets = [_build_inner(d, f"ConcatDataset.datasets[{i}]") for i, d in enumerate(datasets)]
        self.classes = list(getattr(self.datasets[0], "classes", []))
        for i, dataset in enumerate(self.datasets[1:], start=1):
            if list(getattr(dataset, "classes", [])) != self.classes:
                raise DataError(
                    f"ConcatDataset: datasets[{i}] ({dataset!r}) has classes {list(dataset.classes)[:8]}..., "
                    f"datasets[0] has {self.classes[:8]}...; concatenated datasets must share classes (set "
                    "'classes' on each to the same list)"
                )
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()
        self.flags = np.concatenate([aspect_ratio_flags(d) for d in self.datasets])

    def locate(self, index: int) -> tuple[int, int]:
        """(which dataset, index inside it) of image ``index``."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"ConcatDataset index {index} out of range for {len(self)} images")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which > 0 else 0
        return which, index - start

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        which, inner = self.locate(index)
        return self.datasets[which][inner]

    def get_data_info(self, index: int) -> dict[str, Any]:
        which, inner = self.locate(index)
        return self.datasets[which].get_data_info(inner)

    def get_ann_info(self, index: int) -> dict[str, Any]:
        which, inner = self.locate(index)
        return _ann_info(self.datasets[which], inner)

    def __repr__(self) -> str:
        return f"ConcatDataset({', '.join(repr(d) for d in self.datasets)})"


class RepeatDataset(Dataset):
    """``dataset`` repeated ``times`` times per epoch (fewer, longer epochs for small datasets)."""

    def __init__(self, dataset: Mapping[str, Any] | Dataset, times: int) -> None:
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ConfigError(f"RepeatDataset.times must be a positive integer, got {times!r}")
        self.dataset = _build_inner(dataset, "RepeatDataset.dataset")
        self.times = times
        self.classes = list(getattr(self.dataset, "classes", []))
        self.flags = np.tile(aspect_ratio_flags(self.dataset), times)
        self._inner_len = len(self.dataset)

    def __len__(self) -> int:
        return self.times * self._inner_len

    def _inner(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"RepeatDataset index {index} out of range for {len(self)} images")
        return index % self._inner_len

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self._inner(index)]

    def get_data_info(self, index: int) -> dict[str, Any]:
        return self.dataset.get_data_info(self._inner(index))

    def get_ann_info(self, index: int) -> dict[str, Any]:
        return _ann_info(self.dataset, self._inner(index))

    def __repr__(self) -> str:
        return f"RepeatDataset({self.dataset!r}, times={self.times})"


class ClassBalancedDataset(Dataset):
    """Repeat factor sampling (LVIS): images with rare categories appear several times per epoch.

    For category ``c`` present in a fraction ``f(c)`` of the images, ``r(c) = max(1, sqrt(t / f(c)))``
    with ``t = oversample_thr``; an image is repeated ``ceil(max r(c))`` times over its categories
    (ignored boxes do not count). Images without objects appear once, or not at all when
    ``filter_empty_gt``. The repeat counts are fixed at construction, so every epoch and rank agree.
    """

    def __init__(self, dataset: Mapping[str, Any] | Dataset, oversample_thr: float,
                 filter_empty_gt: bool = True) -> None:
        if not isinstance(oversample_thr, (int, float)) or isinstance(oversample_thr, bool) or not 0 < oversample_thr <= 1:
            raise ConfigError(f"ClassBalancedDataset.oversample_thr must be in (0, 1], got {oversample_thr!r}")
        self.dataset = _build_inner(dataset, "ClassBalancedDataset.dataset")
        self.oversample_thr = float(oversample_thr)
        self.classes = list(getattr(self.dataset, "classes", []))
        self.repeat_factors = self.image_repeat_factors(filter_empty_gt)
        self.indices = np.repeat(np.arange(len(self.dataset)), self.repeat_factors)
        if len(self.indices) == 0:
            raise DataError(f"ClassBalancedDataset: no image of {self.dataset!r} has objects (filter_empty_gt)")
        self.flags = aspect_ratio_flags(self.dataset)[self.indices]

    def _labels(self, index: int) -> set[int]:
        return {int(label) for label in np.asarray(_ann_info(self.dataset, index).get("labels", [])).reshape(-1)}

    def image_repeat_factors(self, filter_empty_gt: bool) -> np.ndarray:
        """How many times each image of the inner dataset appears (0 for a dropped empty image)."""
        labels = [self._labels(i) for i in range(len(self.dataset))]
        counts: dict[int, int] = {}
        for present in labels:
            for label in present:
                counts[label] = counts.get(label, 0) + 1
        num_images = len(labels)
        category_factor = {
            label: max(1.0, math.sqrt(self.oversample_thr / (count / num_images))) for label, count in counts.items()
        }
        factors = [
            math.ceil(max(category_factor[label] for label in present)) if present else (0 if filter_empty_gt else 1)
            for present in labels
        ]
        return np.asarray(factors, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    def get_data_info(self, index: int) -> dict[str, Any]:
        return self.dataset.get_data_info(int(self.indices[index]))

    def get_ann_info(self, index: int) -> dict[str, Any]:
        return _ann_info(self.dataset, int(self.indices[index]))

    def __repr__(self) -> str:
        return f"ClassBalancedDataset({self.dataset!r}, oversample_thr={self.oversample_thr}, images={len(self)})"
