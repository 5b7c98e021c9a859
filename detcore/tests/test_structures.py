"""Instances, ImageMeta, collate."""

from __future__ import annotations

import pytest
import torch

from detcore.structures import DetSample, ImageMeta, Instances, collate


def _inst(n=4):
    return Instances((20, 30), boxes=torch.arange(n * 4, dtype=torch.float).view(n, 4),
                     labels=torch.arange(n), names=[f"o{i}" for i in range(n)])


def test_indexing_selects_every_field():
    inst = _inst()
    sub = inst[torch.tensor([True, False, True, False])]
    assert sub.labels.tolist() == [0, 2] and sub.names == ["o0", "o2"]
    assert sub.boxes.tolist() == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert inst[1].labels.tolist() == [1] and inst[-1].names == ["o3"]
    assert inst[torch.tensor([3, 0])].names == ["o3", "o0"]
    assert len(inst[1:3]) == 2 and inst.image_size == (20, 30)


def test_length_mismatch_and_missing_field_are_named():
    inst = _inst()
    with pytest.raises(ValueError, match="field 'scores' has length 3"):
        inst.scores = torch.zeros(3)
    with pytest.raises(AttributeError, match="no field 'masks'"):
        _ = inst.masks


def test_cat_and_to():
    both = Instances.cat([_inst(2), _inst(3)])
    assert len(both) == 5 and both.names == ["o0", "o1", "o0", "o1", "o2"]
    assert both.to("cpu").boxes.device.type == "cpu"
    assert len(Instances.empty()) == 0


def test_collate_pads_to_divisor_and_keeps_pixels():
    def sample(h, w, v):
        meta = ImageMeta(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w))
        return DetSample(image=torch.full((3, h, w), v), meta=meta, gt=_inst(1))

    batch = collate([sample(10, 20, 1.0), sample(33, 8, 2.0)], size_divisor=32)
    assert batch.images.shape == (2, 3, 64, 32)
    assert batch.images[0, :, :10, :20].eq(1).all() and batch.images[0, :, 10:, :].eq(0).all()
    assert batch.images[1, :, :33, :8].eq(2).all() and batch.images[1, :, :, 8:].eq(0).all()
    assert [m.pad_shape for m in batch.metas] == [(64, 32), (64, 32)]
    assert batch.ignored is None and len(batch.gt) == 2
