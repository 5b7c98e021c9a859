"""Batch samplers that keep images of one aspect-ratio group together (MMDetection's GroupSampler).

Images are split into two groups, wide (width / height > 1) and tall, so a padded batch wastes
little space. Each epoch's order comes from ``seed + epoch`` only, so every rank of a distributed
job computes the same global list of batches and takes its own disjoint share of it.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from detcore.errors import DataError


def aspect_ratio_flags(dataset: object) -> np.ndarray:
    """Per image: 1 when wider than tall, from ``get_data_info`` (no pixels are read)."""
    flags = getattr(dataset, "flags", None)
    if flags is not None:
        return np.asarray(flags, dtype=np.int64)
    infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    return np.array([int(info["width"] / info["height"] > 1) for info in infos], dtype=np.int64)


class GroupSampler(Sampler[list[int]]):
    """Yields batches (lists of indices) whose images share an aspect-ratio group.

    With ``shuffle``, each group is permuted and cut into batches and the batches are permuted,
    all from ``seed + epoch``; ``set_epoch`` chooses the epoch, otherwise it advances by one per
    pass. A group's last batch may be smaller unless ``drop_last``. ``group_by_aspect_ratio=False``
    puts all images in one group.
    """

    def __init__(
        self,
        dataset: object,
        batch_size: int,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        group_by_aspect_ratio: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = 0 if seed is None else int(seed)
        self.drop_last = drop_last
        num = len(dataset)  # type: ignore[arg-type]
        self.flags = aspect_ratio_flags(dataset) if group_by_aspect_ratio else np.zeros(num, dtype=np.int64)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` for the next pass (call before each epoch)."""
        self.epoch = int(epoch)

    def global_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of ``epoch`` over the whole dataset, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        batches: list[list[int]] = []
        for group in np.unique(self.flags):
            indices = np.flatnonzero(self.flags == group)
            if self.shuffle:
                indices = rng.permutation(indices)
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start:start + self.batch_size].tolist()
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def batches(self, epoch: int) -> list[list[int]]:
        return self.global_batches(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        epoch = self.epoch
        self.epoch += 1
        yield from self.batches(epoch)

    def __len__(self) -> int:
        return len(self.batches(self.epoch))


class DistributedGroupSampler(GroupSampler):
    """``GroupSampler`` for ``num_replicas`` processes: rank ``r`` takes global batches r, r + R, ...

    Shards are disjoint and together cover the dataset. So that every rank runs the same number of
    iterations, the batch list is padded by repeating its first batches (or, with ``drop_last``,
    cut) to a multiple of ``num_replicas``. Ranks default to ``torch.distributed``'s.
    """

    def __init__(
        self,
        dataset: object,
        batch_size: int,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        group_by_aspect_ratio: bool = True,
    ) -> None:
        super().__init__(dataset, batch_size, shuffle, seed, drop_last, group_by_aspect_ratio)
        if num_replicas is None or rank is None:
            import torch.distributed as dist

            if not dist.is_available() or not dist.is_initialized():
                raise DataError("DistributedGroupSampler needs num_replicas and rank (torch.distributed is not initialised)")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.num_replicas = num_replicas
        self.rank = rank

    def batches(self, epoch: int) -> list[list[int]]:
        batches = self.global_batches(epoch)
        if not batches:
            return []
        if self.drop_last:
            batches = batches[: len(batches) - len(batches) % self.num_replicas]
        else:
            missing = -len(batches) % self.num_replicas
            batches = batches + [batches[i % len(batches)] for i in range(missing)]
        return batches[self.rank::self.num_replicas]


def shard_indices(batches: Sequence[Sequence[int]]) -> list[int]:
    """Flatten batches into the indices they visit (for checks and logging)."""
    return [i for batch in batches for i in batch]
