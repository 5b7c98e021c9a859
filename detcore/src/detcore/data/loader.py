"""Building a ``torch.utils.data.DataLoader`` that yields ``detcore.structures.Batch``.

Test-time augmentation: when the dataset's pipeline ends with ``MultiScaleFlipAug`` each item is
a list of ``DetSample`` views; the collate then returns a list of ``Batch``, one per view (view k
of every image), which is what ``Detector.predict_tta`` takes.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from detcore.data.samplers import DistributedGroupSampler, GroupSampler
from detcore.structures import Batch, DetSample, collate


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


def seed_worker(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Seed numpy, random and torch in a loader worker with ``seed + rank * num_workers + worker_id``."""
    worker_seed = seed + rank * num_workers + worker_id
    np.random.seed(worker_seed % 2**32)
    random.seed(worker_seed)
    torch.manual_seed(worker_seed)


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
) -> DataLoader:
    """A DataLoader of ``Batch`` (padded to ``size_divisor``) with a (distributed) group batch sampler.

    ``seed`` fixes the epoch orders (``seed + epoch``) and the workers' random streams; the
    sampler is reachable as ``loader.batch_sampler`` for ``set_epoch``. In distributed mode the
    rank and world size come from ``torch.distributed`` unless given.
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
    init_fn = (
        functools.partial(seed_worker, num_workers=num_workers, rank=rank_for_seed, seed=seed)
        if num_workers > 0 else None
    )
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=functools.partial(collate_samples, size_divisor=size_divisor),
        worker_init_fn=init_fn,
        generator=generator,
        persistent_workers=persistent_workers and num_workers > 0,
    )
