"""Group batch sampler, its distributed shards, and the loader producing Batch objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detcore.data.loader import build_dataloader, collate_samples
from detcore.data.samplers import DistributedGroupSampler, GroupSampler, shard_indices
from detcore.structures import Batch, DetSample, ImageMeta, Instances


class ToyDataset(torch.utils.data.Dataset):
    """Images of random sizes; item i is a DetSample whose image id is i."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.sizes = [(int(rng.integers(20, 60)), int(rng.integers(20, 60))) for _ in range(n)]

    def __len__(self) -> int:
        return len(self.sizes)

    def get_data_info(self, i: int) -> dict:
        w, h = self.sizes[i]
        return {"width": w, "height": h}

    def __getitem__(self, i: int) -> DetSample:
        w, h = self.sizes[i]
        meta = ImageMeta(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), image_id=i)
        gt = Instances((h, w), boxes=torch.tensor([[0.0, 0, 5, 5]]), labels=torch.tensor([i % 3]))
        return DetSample(image=torch.full((3, h, w), float(np.random.rand())), meta=meta, gt=gt)


def wide(ds, i):
    info = ds.get_data_info(i)
    return info["width"] > info["height"]


def test_group_sampler_batches_share_aspect_and_cover_all():
    ds = ToyDataset(37)
    sampler = GroupSampler(ds, batch_size=4, seed=5)
    batches = list(sampler)
    assert sorted(shard_indices(batches)) == list(range(37))
    assert all(len({wide(ds, i) for i in b}) == 1 for b in batches)
    assert all(len(b) <= 4 for b in batches) and len(batches) == len(sampler)
    assert list(sampler) != batches  # next epoch, new order
    sampler.set_epoch(0)
    assert list(sampler) == batches  # same seed + epoch, same order
    assert list(GroupSampler(ds, 4, shuffle=False)) == list(GroupSampler(ds, 4, shuffle=False, seed=9))


@pytest.mark.parametrize("n,world", [(48, 2), (40, 3), (37, 4)])
def test_distributed_shards_disjoint_complete_deterministic(n, world):
    ds = ToyDataset(n, seed=1)
    shards = [DistributedGroupSampler(ds, 4, num_replicas=world, rank=r, seed=3) for r in range(world)]
    for s in shards:
        s.set_epoch(2)
    per_rank = [list(s) for s in shards]
    assert len({len(b) for b in per_rank}) == 1  # same number of iterations everywhere
    flat = [shard_indices(b) for b in per_rank]
    assert set().union(*map(set, flat)) == set(range(n))
    total_batches = len(GroupSampler(ds, 4).global_batches(2))
    if total_batches % world == 0:
        assert sum(len(f) for f in flat) == n  # exactly a partition
    else:  # only the padding batches repeat
        assert sum(len(f) for f in flat) - n <= 4 * (world - 1)
    for r in range(world):
        again = DistributedGroupSampler(ds, 4, num_replicas=world, rank=r, seed=3)
        again.set_epoch(2)
        assert list(again) == per_rank[r]
    for b in per_rank[0]:
        assert len({wide(ds, i) for i in b}) == 1


def test_distributed_disjoint_when_divisible():
    ds = ToyDataset(64, seed=2)
    flags = np.array([wide(ds, i) for i in range(64)])
    # group sizes that are multiples of batch_size * world give exact partitions
    keep = np.concatenate([np.flatnonzero(flags)[:16], np.flatnonzero(~flags)[:16]])
    sub = torch.utils.data.Subset(ds, keep.tolist())
    sub.get_data_info = lambda i: ds.get_data_info(int(keep[i]))
    shards = [shard_indices(list(DistributedGroupSampler(sub, 4, num_replicas=2, rank=r))) for r in range(2)]
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(32))


def test_loader_yields_batches_and_seeds_workers():
    ds = ToyDataset(10)
    loader = build_dataloader(ds, batch_size=3, seed=7, size_divisor=16)
    batches = list(loader)
    assert all(isinstance(b, Batch) for b in batches)
    assert sum(len(b) for b in batches) == 10
    for b in batches:
        assert b.images.shape[-1] % 16 == 0 and b.images.shape[-2] % 16 == 0
        assert len(b.gt) == len(b)
    ids = lambda bs: [m.image_id for b in bs for m in b.metas]
    assert ids(list(build_dataloader(ds, 3, seed=7))) == ids(batches)

    def values(num_workers):
        lo = build_dataloader(ds, 2, num_workers=num_workers, seed=11, shuffle=False)
        return [float(b.images[0, 0, 0, 0]) for b in lo]

    first, second = values(2), values(2)
    assert first == second  # worker random streams come from the seed


def test_collate_tta_lists_into_batches_per_view():
    ds = ToyDataset(3)
    items = [[ds[i], ds[i]] for i in range(3)]
    views = collate_samples(items, size_divisor=8)
    assert isinstance(views, list) and len(views) == 2 and all(len(v) == 3 for v in views)
    with pytest.raises(TypeError, match="PackDetInputs"):
        collate_samples([{"img": 1}])
