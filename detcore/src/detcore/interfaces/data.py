"""Abstract bases of the data side: datasets and pipeline transforms."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from torch.utils.data import Dataset as TorchDataset


class Dataset(TorchDataset, ABC):
    """A detection dataset: ``len``, ``dataset[i]`` runs the pipeline on image ``i``.

    ``classes`` are the class names in label order; ``get_data_info(i)`` returns the raw
    (pre-pipeline) record of image ``i`` so samplers can group by aspect ratio without
    loading pixels.
    """

    classes: Sequence[str] = ()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> Any: ...

    @abstractmethod
    def get_data_info(self, index: int) -> dict[str, Any]: ...


class Transform(ABC):
    """One pipeline step: takes the ``results`` dict, returns it updated (or None to drop the sample).

    Keys follow the manual's pipeline (`003` §4.1): ``img``, ``img_shape``, ``ori_shape``,
    ``gt_bboxes``, ``gt_labels``, ``gt_masks``, ``scale_factor``, ``flip`` ...
    """

    @abstractmethod
    def __call__(self, results: dict[str, Any]) -> dict[str, Any] | None: ...

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
