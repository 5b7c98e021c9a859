"""Instances, ImageMeta, collate."""

from __future__ import annotations

import pytest
import torch

from detcore.structures import SEG_IGNORE, DetSample, ImageMeta, Instances, collate


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


def _seg_sample(h, w, seg_h=None, seg_w=None, **kwargs):
    """An (h, w) image whose semantic map (seg_h, seg_w) holds 0..K-1 left to right."""
    meta = ImageMeta(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), file_name=f"{h}x{w}.png")
    seg_h, seg_w = seg_h or h, seg_w or w
    seg = torch.arange(seg_w).remainder(5).expand(seg_h, seg_w).clone()
    return DetSample(image=torch.ones(3, h, w), meta=meta, gt=_inst(1), gt_sem_seg=seg, **kwargs)


def test_collate_pads_semantic_maps_with_ignore_to_the_batch_shape():
    a, b = _seg_sample(10, 20), _seg_sample(33, 8)
    batch = collate([a, b], size_divisor=32)
    assert batch.gt_sem_seg.shape == (2, 64, 32) and batch.gt_sem_seg.dtype == torch.int64
    assert torch.equal(batch.gt_sem_seg[0, :10, :20], a.gt_sem_seg)
    assert torch.equal(batch.gt_sem_seg[1, :33, :8], b.gt_sem_seg)
    pad = torch.ones(2, 64, 32, dtype=torch.bool)
    pad[0, :10, :20] = False
    pad[1, :33, :8] = False
    assert batch.gt_sem_seg[pad].eq(SEG_IGNORE).all() and SEG_IGNORE == 255
    assert collate([_inst_sample(4, 4)]).gt_sem_seg is None


def test_collate_pads_rescaled_semantic_maps_to_the_same_fraction_of_the_batch():
    # SegRescale(1/8) after Pad(32): 64x96 -> 8x12 and 32x64 -> 4x8; the batch is 64x96
    batch = collate([_seg_sample(64, 96, 8, 12), _seg_sample(32, 64, 4, 8)], size_divisor=32)
    assert batch.images.shape[-2:] == (64, 96) and batch.gt_sem_seg.shape == (2, 8, 12)
    assert batch.gt_sem_seg[1, 4:].eq(255).all() and batch.gt_sem_seg[1, :, 8:].eq(255).all()
    assert batch.gt_sem_seg[1, :4, :8].lt(5).all()


def test_collate_refuses_a_batch_where_some_images_lack_the_semantic_map():
    with pytest.raises(ValueError, match=r"images \['4x4.png'\] have no semantic map"):
        collate([_seg_sample(8, 8), _inst_sample(4, 4)])


def _inst_sample(h, w, **kwargs):
    meta = ImageMeta(ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w), file_name=f"{h}x{w}.png")
    return DetSample(image=torch.zeros(3, h, w), meta=meta, **kwargs)


def test_collate_gathers_extra_per_key_and_batch_to_moves_everything():
    keypoints = torch.tensor([[[1.0, 2.0, 2.0], [3.0, 4.0, 1.0]]])
    gt = Instances((8, 8), boxes=torch.zeros(1, 4), labels=torch.zeros(1, dtype=torch.long), keypoints=keypoints)
    a = _seg_sample(8, 8, extra={"depth": torch.ones(8, 8), "caption": "two shapes"})
    a.gt = gt
    b = _seg_sample(8, 8, extra={"caption": "none"})
    batch = collate([a, b])
    assert batch.extra["caption"] == ["two shapes", "none"]
    assert torch.equal(batch.extra["depth"][0], torch.ones(8, 8)) and batch.extra["depth"][1] is None
    assert torch.equal(batch.gt[0].keypoints, keypoints)

    moved = batch.to("meta")
    assert moved.images.is_meta and moved.gt_sem_seg.is_meta
    assert moved.gt[0].keypoints.is_meta and moved.gt[0].boxes.is_meta and moved.gt[1].labels.is_meta
    assert moved.extra["depth"][0].is_meta and moved.extra["depth"][1] is None
    assert moved.extra["caption"] == ["two shapes", "none"] and moved.metas == batch.metas
