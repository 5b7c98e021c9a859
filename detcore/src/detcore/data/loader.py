"""Building a ``torch.utils.data.DataLoader`` that yields ``detcore.structures.Batch``.

Test-time augmentation: when the dataset's pipeline ends with ``MultiScaleFlipAug`` each item is
a list of ``DetSample`` views; the collate then returns a list of ``Batch``, one per view (view k
of every image), which is what ``Detector.predict_tta`` takes.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, get_worker_info
from torch.utils.data import Dataset as TorchDataset

from detcore.data.samplers import DistributedGroupSampler, GroupSampler
from detcore.errors import BadImageError, ConfigError, DataError
from detcore.structures import Batch, DetSample, collate

ON_BAD_IMAGE = ("error", "skip")


def collate_samples(items: Sequence[Any], size_divisor: int = 32) -> Batch | list[Batch]:
    """``DetSample``s -> one padded ``Batch``; lists of TTA views -> one ``Batch`` per view."""
    if items and isinstance(items[0], (list, tuple)):
        num_views = len(items[0])
        if any(len(views) != num_views for views in items):
            raise ValueError("collate: images of one batch have different numbers of test-time views")
        return [collate([views[k] for views in items], size_divisor=size_divisor) for k in range(num_views)]
    if items and not isinstance(items[0], DetSample):
        raise TypeError(
            f"collate: the dataset returned {type(items[0]).__name__}; its pipeline must end with PackDetInputs"
        )
    return collate(list(items), size_divisor=size_divisor)


def worker_seed(seed: int, rank: int, epoch: int, worker_id: int) -> int:
    """The seed of loader worker ``worker_id`` of process ``rank`` in ``epoch`` (a SeedSequence of all four)."""
    return int(np.random.SeedSequence([int(seed), int(rank), int(epoch), int(worker_id)]).generate_state(1)[0])


def seed_everything_in_worker(value: int) -> None:
    """Seed numpy, random and torch of this (worker) process."""
    np.random.seed(value % 2**32)
    random.seed(value)
    torch.manual_seed(value)


class ItemFailure:
    """A sample that could not be loaded, carried from a worker to the main process as plain data."""

    def __init__(self, index: int, message: str, skip: bool) -> None:
        self.index = index
        self.message = message
        self.skip = skip


class PartialBatch:
    """A batch some of whose images were skipped (``on_bad_image = "skip"``); ``batch`` None if all were."""

    def __init__(self, batch: Any, skipped: list[ItemFailure]) -> None:
        self.batch = batch
        self.skipped = skipped


class EpochTaggedSampler(Sampler[list[tuple[int, int]]]):
    """A batch sampler whose indices carry the epoch: ``(epoch, index)``, so that workers (persistent
    ones too) can re-seed themselves at the start of every epoch. Other attributes are the wrapped
    sampler's (``set_epoch``, ``batch_size``, ``flags``...)."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self._passes = 0

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = getattr(self.batch_sampler, "epoch", self._passes)
        self._passes += 1
        for batch in self.batch_sampler:
            yield [(epoch, int(i)) for i in batch]

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:
        if name == "batch_sampler":
            raise AttributeError(name)
        return getattr(self.batch_sampler, name)


class LoaderItems(TorchDataset):
    """The dataset as a loader sees it: ``(epoch, index)`` keys, per-epoch worker seeds, and load errors
    turned into :class:`ItemFailure` data so that the main process reports them as one paragraph.

    Workers are seeded from (seed, rank, epoch, worker id) at their first sample of each epoch, so an
    epoch's augmentations do not depend on what earlier epochs drew (persistent or not), and a resumed
    run draws what an uninterrupted one does. Other attributes are the wrapped dataset's.
    """

    def __init__(self, dataset: Any, seed: int, rank: int, on_bad_image: str = "error") -> None:
        if on_bad_image not in ON_BAD_IMAGE:
            raise ConfigError(f"on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
        self.dataset = dataset
        self.seed = seed
        self.rank = rank
        self.on_bad_image = on_bad_image
        self._seeded_epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key: Any) -> Any:
        epoch, index = key if isinstance(key, tuple) else (None, key)
        info = get_worker_info()
        if info is not None and epoch is not None and epoch != self._seeded_epoch:
            seed_everything_in_worker(worker_seed(self.seed, self.rank, epoch, info.id))
            self._seeded_epoch = epoch
        try:
            return self.dataset[index]
        except DataError as exc:
            skip = isinstance(exc, BadImageError) and self.on_bad_image == "skip"
            return ItemFailure(index, str(exc), skip)


def collate_items(items: Sequence[Any], size_divisor: int = 32) -> Any:
    """``collate_samples`` after setting aside failures: a failure to raise, or a partial batch."""
    failures = [item for item in items if isinstance(item, ItemFailure)]
    fatal = [f for f in failures if not f.skip]
    if fatal:
        return fatal[0]
    if not failures:
        return collate_samples(items, size_divisor)
    kept = [item for item in items if not isinstance(item, ItemFailure)]
    return PartialBatch(collate_samples(kept, size_divisor) if kept else None, failures)


class DetDataLoader(DataLoader):
    """A DataLoader whose load errors are raised in the main process as the DataError they were
    (one paragraph, not a worker traceback) and whose skipped images are counted in ``skipped``
    and announced through ``on_skip`` (the runner logs them)."""

    on_skip: Callable[[str], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.skipped: list[str] = []

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for item in super().__iter__():
            if isinstance(item, ItemFailure):
                raise DataError(
                    f"{item.message}. (Data loader, sample {item.index}; to leave out images that cannot be "
                    "read, set on_bad_image = \"skip\" in the data loader table, e.g. --set "
                    "+train_dataloader.on_bad_image=skip)"
                )
            if isinstance(item, PartialBatch):
                for failure in item.skipped:
                    self.skipped.append(failure.message)
                    if self.on_skip is not None:
                        self.on_skip(failure.message)
                if item.batch is None:
                    continue
                item = item.batch
            yield item


def build_dataloader(
    dataset: Any,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool = True,
    seed: int | None = None,
    distributed: bool = False,
    aspect_ratio_grouping: bool = True,
    drop_last: bool = False,
    size_divisor: int = 32,
    num_replicas: int | None = None,
    rank: int | None = None,
    persistent_workers: bool = False,
    on_bad_image: str = "error",
) -> DetDataLoader:
    """A DataLoader of ``Batch`` (padded to ``size_divisor``) with a (distributed) group batch sampler.

    ``seed`` fixes the epoch orders (``seed + epoch``) and, with the rank and epoch, the workers'
    random streams; the sampler is reachable as ``loader.batch_sampler`` for ``set_epoch``. In
    distributed mode the rank and world size come from ``torch.distributed`` unless given.
    ``on_bad_image``: "error" stops at the first missing, corrupt or mis-sized image with a message
    naming it; "skip" leaves such images out of their batch and counts them in ``loader.skipped``.
    """
    seed = 0 if seed is None else int(seed)
    if distributed:
        sampler: GroupSampler = DistributedGroupSampler(
            dataset, batch_size, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
            drop_last=drop_last, group_by_aspect_ratio=aspect_ratio_grouping,
        )
        rank_for_seed = sampler.rank  # type: ignore[attr-defined]
    else:
        sampler = GroupSampler(
            dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
            group_by_aspect_ratio=aspect_ratio_grouping,
        )
        rank_for_seed = 0
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DetDataLoader(
        LoaderItems(dataset, seed, rank_for_seed, on_bad_image),
        batch_sampler=EpochTaggedSampler(sampler),
        num_workers=num_workers,
        collate_fn=functools.partial(collate_items, size_divisor=size_divisor),
        generator=generator,
        persistent_workers=persistent_workers and num_workers > 0,
    )
