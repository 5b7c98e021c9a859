"""Every geometric transform keeps each object's box on its mask (within 1 px) and moves them correctly."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from detcore.data.datasets.coco import CocoDataset
from detcore.data.transforms.augment import MultiScaleFlipAug
from detcore.data.transforms.compose import RandomChoice
from detcore.data.transforms.formatting import PackDetInputs
from detcore.data.transforms.geometric import (
    Expand,
    MinIoURandomCrop,
    Pad,
    RandomCrop,
    RandomFlip,
    Resize,
)
from detcore.data.transforms.loading import LoadAnnotations, LoadImageFromFile
from detcore.data.transforms.photometric import Normalize, PhotoMetricDistortion

LOAD = [LoadImageFromFile(), LoadAnnotations(with_mask=True)]


@functools.lru_cache(maxsize=4)
def _dataset(shapes_dir) -> CocoDataset:
    return CocoDataset("annotations/instances_train.json", data_root=shapes_dir, img_prefix="train/", pipeline=LOAD)


def loaded(shapes_dir, index: int) -> dict:
    return _dataset(shapes_dir)[index]


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    out = []
    for m in masks.bool():
        ys, xs = torch.nonzero(m, as_tuple=True)
        out.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def assert_aligned(sample, tol: float = 1.0) -> None:
    gt = sample.gt
    assert len(gt) > 0
    assert gt.masks.shape[-2:] == sample.image.shape[-2:]
    assert all(m.any() for m in gt.masks)
    diff = (gt.boxes - mask_boxes(gt.masks)).abs().max().item()
    assert diff <= tol, f"box and mask differ by {diff:.2f} px"


TRANSFORMS = {
    "resize_keep_ratio": lambda: Resize(scale=(200, 150)),
    "resize_exact": lambda: Resize(scale=(130, 110), keep_ratio=False),
    "resize_range": lambda: Resize(scale=[(100, 100), (260, 200)], multiscale_mode="range"),
    "flip_horizontal": lambda: RandomFlip(prob=1.0, direction="horizontal"),
    "flip_vertical": lambda: RandomFlip(prob=1.0, direction="vertical"),
    "flip_diagonal": lambda: RandomFlip(prob=1.0, direction="diagonal"),
    "pad_divisor": lambda: Pad(size_divisor=64),
    "pad_fixed": lambda: Pad(size=(130, 150)),
    "random_crop": lambda: RandomCrop(crop_size=(60, 70)),
    "random_crop_range": lambda: RandomCrop(crop_size=(40, 80), crop_type="absolute_range"),
    "detr_branches": lambda: RandomChoice([
        [Resize(scale=[(150, 90), (150, 110)], multiscale_mode="value")],
        [Resize(scale=[(150, 70)]), RandomCrop((40, 60), crop_type="absolute_range", allow_negative_crop=True),
         Resize(scale=[(150, 90), (150, 110)], multiscale_mode="value")],
    ]),
    "expand": lambda: Expand(mean=(10, 20, 30), ratio_range=(1.5, 3), prob=1.0),
    "min_iou_crop": lambda: MinIoURandomCrop(min_ious=(0.1, 0.3), min_crop_size=0.3),
    "photometric": lambda: PhotoMetricDistortion(),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_boxes_follow_masks(shapes_dir, name):
    np.random.seed(0)
    transform = TRANSFORMS[name]()
    for index in range(6):
        results = transform(loaded(shapes_dir, index))
        if results is None:  # RandomCrop rejected a crop without objects: allowed, retried by the dataset
            assert name in ("random_crop", "random_crop_range")
            continue
        assert_aligned(PackDetInputs()(results))


@pytest.mark.parametrize("side", [40, 60, 89])
def test_downscaled_masks_stay_within_one_source_pixel(shapes_dir, side):
    """Nearest-neighbour mask downsampling may drop parts thinner than one sampling step (1/scale px)."""
    scale = side / 96
    for index in range(6):
        assert_aligned(PackDetInputs()(Resize(scale=(side, side))(loaded(shapes_dir, index))), tol=1 + 1 / scale)


def test_flip_directions_move_boxes_exactly(shapes_dir):
    base = loaded(shapes_dir, 0)
    h, w = base["img_shape"]
    boxes = base["gt_bboxes"].as_subclass(torch.Tensor)
    x1, y1, x2, y2 = boxes.unbind(1)
    expected = {
        "horizontal": torch.stack([w - x2, y1, w - x1, y2], 1),
        "vertical": torch.stack([x1, h - y2, x2, h - y1], 1),
        "diagonal": torch.stack([w - x2, h - y2, w - x1, h - y1], 1),
    }
    img = base["img"].as_subclass(torch.Tensor)
    for direction, want in expected.items():
        out = RandomFlip(prob=1.0, direction=direction)(base)
        assert out["flip"] and out["flip_direction"] == direction
        torch.testing.assert_close(out["gt_bboxes"].as_subclass(torch.Tensor), want)
        dims = {"horizontal": [2], "vertical": [1], "diagonal": [1, 2]}[direction]
        assert torch.equal(out["img"].as_subclass(torch.Tensor), img.flip(dims))
    assert RandomFlip(prob=0.0)(base)["flip"] is False


def test_resize_scale_factor_and_shapes(shapes_dir):
    base = loaded(shapes_dir, 1)  # 96 x 96
    out = Resize(scale=(300, 144))(base)
    assert out["img_shape"] == (144, 144) and out["scale_factor"] == (1.5, 1.5)
    torch.testing.assert_close(
        out["gt_bboxes"].as_subclass(torch.Tensor), base["gt_bboxes"].as_subclass(torch.Tensor) * 1.5
    )
    exact = Resize(scale=(120, 48), keep_ratio=False)(base)
    assert exact["img_shape"] == (48, 120) and exact["scale_factor"] == (1.25, 0.5)


def test_resize_value_mode_picks_listed_scales_and_range_mode_samples_between(shapes_dir):
    base = loaded(shapes_dir, 0)
    np.random.seed(1)
    value = Resize(scale=[(100, 100), (200, 200)], multiscale_mode="value")
    sizes = {value(base)["img_shape"] for _ in range(20)}
    assert sizes == {(100, 100), (200, 200)}
    rng = Resize(scale=[(100, 100), (200, 200)], multiscale_mode="range")
    sizes = {rng(base)["img_shape"][0] for _ in range(30)}
    assert len(sizes) > 5 and min(sizes) >= 100 and max(sizes) <= 200


def test_pad_keeps_img_shape_and_pads_with_value(shapes_dir):
    base = loaded(shapes_dir, 0)
    out = Pad(size=(100, 128), pad_val=7)(base)
    assert out["pad_shape"] == (100, 128) and out["img_shape"] == (96, 96)
    assert tuple(out["img"].shape) == (3, 100, 128) and tuple(out["gt_masks"].shape[-2:]) == (100, 128)
    assert int(out["img"][:, :, 96:].min()) == 7 and int(out["gt_masks"][:, :, 96:].sum()) == 0


def test_expand_fills_with_mean_and_shifts(shapes_dir):
    np.random.seed(5)
    base = loaded(shapes_dir, 2)
    out = Expand(mean=(10, 20, 30), ratio_range=(2, 2), prob=1.0)(base)
    assert out["img_shape"] == (192, 192)
    assert out["img"][:, 0, 0].tolist() == [10, 20, 30] or out["img"][:, -1, -1].tolist() == [10, 20, 30]
    shift = out["gt_bboxes"].as_subclass(torch.Tensor) - base["gt_bboxes"].as_subclass(torch.Tensor)
    assert torch.allclose(shift[:, 0], shift[:, 2]) and torch.allclose(shift[:, 1], shift[:, 3])


def test_random_crop_drops_outside_objects_or_sample():
    from torchvision import tv_tensors

    img = tv_tensors.Image(torch.zeros(3, 100, 100, dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes(torch.tensor([[0.0, 0, 10, 10], [80, 80, 100, 100]]), format="XYXY",
                                     canvas_size=(100, 100))
    results = {"img": img, "gt_bboxes": boxes, "gt_labels": torch.tensor([0, 1]), "bbox_fields": ["gt_bboxes"]}
    np.random.seed(0)
    kept, dropped = 0, 0
    for _ in range(30):
        out = RandomCrop((50, 50))(results)
        if out is None:
            dropped += 1
            continue
        kept += 1
        assert out["img_shape"] == (50, 50) and len(out["gt_bboxes"]) == len(out["gt_labels"]) == 1
    assert kept and dropped
    for _ in range(10):
        assert RandomCrop((50, 50), allow_negative_crop=True)(results) is not None


def test_absolute_range_crop_sizes_and_random_choice_draws():
    """absolute_range draws each side in [min, max] (clipped to the image); RandomChoice runs one pipeline per sample,
    in proportion to ``prob``; malformed arguments name the problem."""
    np.random.seed(0)
    image = {"img": tv_tensors.Image(torch.zeros(3, 100, 120, dtype=torch.uint8)), "img_shape": (100, 120)}
    crop = RandomCrop((30, 110), crop_type="absolute_range", allow_negative_crop=True)
    sizes = {crop(dict(image))["img_shape"] for _ in range(40)}
    assert all(30 <= h <= 100 and 30 <= w <= 110 for h, w in sizes) and len(sizes) > 10

    choice = RandomChoice([[lambda r: {**r, "branch": 0}], [lambda r: {**r, "branch": 1}]], prob=[0.8, 0.2])
    drawn = [choice({})["branch"] for _ in range(500)]
    assert 0.7 < drawn.count(0) / 500 < 0.9
    with pytest.raises(ValueError, match="list of pipelines"):
        RandomChoice([{"type": "Resize"}])
    with pytest.raises(ValueError, match="prob"):
        RandomChoice([[], []], prob=[0.5])
    with pytest.raises(ValueError, match="crop_type"):
        RandomCrop((10, 20), crop_type="relative")


def test_normalize_values_and_bgr():
    from torchvision import tv_tensors

    img = tv_tensors.Image(torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1).expand(3, 2, 2).clone())
    out = Normalize(mean=[10, 10, 10], std=[2, 5, 10])({"img": img})
    assert out["img"][:, 0, 0].tolist() == [0.0, 2.0, 2.0]
    bgr = Normalize(mean=[0, 0, 0], std=[1, 1, 1], to_rgb=False)({"img": img})
    assert bgr["img"][:, 0, 0].tolist() == [30.0, 20.0, 10.0]


def test_multiscale_flip_aug_views_align(shapes_dir):
    tta = MultiScaleFlipAug(
        transforms=[Resize(), RandomFlip(), Pad(size_divisor=32), PackDetInputs()],
        scale=[(144, 144), (48, 48)], flip=True, flip_direction=["horizontal", "vertical", "diagonal"],
    )
    views = tta(loaded(shapes_dir, 3))
    assert len(views) == 8
    assert [v.meta.flip_direction for v in views[:4]] == [None, "horizontal", "vertical", "diagonal"]
    assert [v.meta.img_shape for v in views] == [(144, 144)] * 4 + [(48, 48)] * 4
    assert views[0].meta.scale_factor == (1.5, 1.5) and views[4].meta.scale_factor == (0.5, 0.5)
    for view in views:
        assert_aligned(view)


def test_multiscale_flip_aug_flip_only_keeps_the_inner_scale(shapes_dir):
    """No scale: two views (plain, flipped) at the inner Resize's own scale; no scale at all needs flip."""
    tta = MultiScaleFlipAug(transforms=[RandomFlip(), Resize(scale=(96, 96)), PackDetInputs()], flip=True)
    views = tta(loaded(shapes_dir, 3))
    assert [v.meta.flip for v in views] == [False, True] and [v.meta.img_shape for v in views] == [(96, 96)] * 2
    for view in views:
        assert_aligned(view)
    with pytest.raises(ValueError, match="flip"):
        MultiScaleFlipAug(transforms=[PackDetInputs()])
