"""CityscapesMetric: the official Cityscapes AP / AP50 (cityscapesscripts) on two tiny images in the official
layout, checked against values derived by hand from the benchmark's definition; submission files; bad
ground-truth files named."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from detcore.cli.commands.training import _test_config
from detcore.config import load_config
from detcore.engine.evaluation import build_metric
from detcore.errors import ConfigError, DataError
from detcore.registry import build
from detcore.structures import ImageMeta, Instances
from detcore.tools.convert_cityscapes import convert_cityscapes

pytest.importorskip("cityscapesscripts")

SIZE = 64
ROAD, CAR, PERSON = 7, 26, 24
STEMS = ("aachen/aachen_000000_000019", "bremen/bremen_000001_000019")


def rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def make_layout(root: Path) -> Path:
    """``gtFine/val`` and ``leftImg8bit/val`` of two images; everything not drawn is road (not void)."""
    image_a = np.full((SIZE, SIZE), ROAD, np.uint16)
    image_a[rect(4, 24, 4, 24)] = CAR * 1000  # car A, 400 px
    image_a[rect(40, 60, 4, 24)] = CAR  # a car group (crowd region): never a ground truth, never a false positive
    image_a[rect(4, 9, 40, 49)] = CAR * 1000 + 1  # a 45 px car: under the 100 px minimum, not counted
    image_b = np.full((SIZE, SIZE), ROAD, np.uint16)
    image_b[rect(10, 30, 10, 30)] = CAR * 1000  # car B, 400 px
    image_b[rect(40, 60, 40, 50)] = PERSON * 1000  # a person nobody predicts
    for stem, ids in zip(STEMS, (image_a, image_b)):
        for folder, suffix, data in (("gtFine", "_gtFine_instanceIds.png", ids),
                                     ("leftImg8bit", "_leftImg8bit.png", np.zeros((SIZE, SIZE, 3), np.uint8))):
            path = root / folder / "val" / f"{stem}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(data).save(path)
    convert_cityscapes(root, root / "annotations", ["val"])
    return root


def dataset_of(root: Path):
    cfg = dict(load_config("cityscapes_instance")["test_dataloader"]["dataset"])
    cfg.update(data_root=str(root), ann_file="annotations/instancesonly_filtered_gtFine_val.json",
               pipeline=[{"type": "LoadImageFromFile"}, {"type": "PackDetInputs"}])
    return build("datasets", cfg)


def predictions(dataset) -> list[tuple[ImageMeta, Instances]]:
    car, bus = dataset.classes.index("car"), dataset.classes.index("bus")
    per_image = [
        [(rect(4, 24, 4, 24), 0.9, car),  # P1: car A exactly (IoU 1)
         (rect(30, 40, 30, 50), 0.8, car),  # P2: on road only: a false positive at every overlap
         (rect(40, 60, 4, 24), 0.85, car),  # P4: on the car group: ignored
         (rect(0, 10, 54, 64), 0.7, bus)],  # a bus where there is none: bus has no ground truth, its AP is NaN
        [(rect(10, 30, 10, 38), 0.7, car)],  # P3: car B plus 160 px of road, IoU 400 / 560 = 0.714
    ]
    out = []
    for i, dets in enumerate(per_image):
        masks = torch.as_tensor(np.stack([m for m, _, _ in dets]))
        boxes = torch.tensor([[np.where(m.any(0))[0][0], np.where(m.any(1))[0][0], np.where(m.any(0))[0][-1] + 1,
                               np.where(m.any(1))[0][-1] + 1] for m, _, _ in dets], dtype=torch.float32)
        info = dataset.get_data_info(i)
        meta = ImageMeta((SIZE, SIZE), (SIZE, SIZE), (SIZE, SIZE), image_id=info["img_id"])
        out.append((meta, Instances((SIZE, SIZE), boxes=boxes, masks=masks, labels=torch.tensor([d[2] for d in dets]),
                                    scores=torch.tensor([d[1] for d in dets]))))
    return out


def run(metric, dataset):
    for meta, inst in predictions(dataset):
        metric.process(SimpleNamespace(metas=[meta]), [inst])
    return metric.compute()


@pytest.mark.parametrize("keep_files", [False, True])
def test_official_ap_matches_hand_derived_values(tmp_path, keep_files):
    dataset = dataset_of(make_layout(tmp_path))
    # `detcore test CONFIG CKPT --metrics cityscapes [--outfile-prefix P]` on the Cityscapes config builds this metric
    prefix = str(tmp_path / "kept" / "results") if keep_files else None
    args = argparse.Namespace(metrics=["cityscapes"], format_only=False, outfile_prefix=prefix, config="x", tta=False)
    evaluation = _test_config(load_config("cityscapes_instance"), args, tmp_path)["evaluation"]
    metric = build_metric({**evaluation, "classwise": True}, SimpleNamespace(dataset=dataset))
    assert type(metric).__name__ == "CityscapesMetric" and metric.gt_dir == tmp_path / "gtFine" / "val"
    out = run(metric, dataset)
    # Cars, pooled over both images (P4 ignored, the 45 px car not counted), scores ascending 0.7 / 0.8 / 0.9.
    # Overlaps .50-.70 (P3 matches car B): true = [1, 0, 1], no missed car. cityscapesscripts' curve, one point
    # per score threshold plus (r=0, p=1): p = [2/3, 1/2, 1, 1], r = [1, 1/2, 1/2, 0], and its AP is
    # sum_i p_i (r_{i-1} - r_{i+1}) / 2 with r_{-1} = r_0: (2/3 + 1/2 + 1 + 1) / 4 = 19/24.
    # Overlaps .75-.95 (IoU .714 fails): true = [1, 0, 0] and car B missed: p = [1/3, 1/2, 1, 1],
    # r = [1/2, 1/2, 1/2, 0]: widths [0, 0, 1/4, 1/4], AP = 1/2. Car AP = (5 * 19/24 + 5 * 1/2) / 10 = 31/48.
    # Person: ground truth and no prediction, AP 0. Bus: prediction, no ground truth: NaN, left out of the mean.
    assert out["cityscapes_AP_car"] == pytest.approx(31 / 48)
    assert out["cityscapes_AP_person"] == 0.0 and np.isnan(out["cityscapes_AP_bus"])
    assert out["cityscapes_AP"] == pytest.approx((31 / 48 + 0) / 2)
    assert out["cityscapes_AP50"] == pytest.approx((19 / 24 + 0) / 2)
    assert "car" in metric.summary_text and "average" in metric.summary_text
    kept = sorted(p.name for p in (tmp_path / "kept" / "results.cityscapes").glob("*_pred.txt")) if keep_files else []
    assert kept == (["aachen_000000_000019_pred.txt", "bremen_000001_000019_pred.txt"] if keep_files else [])


def test_format_only_writes_the_submission_files(tmp_path):
    dataset = dataset_of(make_layout(tmp_path))
    metric = build("metrics", {"type": "CityscapesMetric", "metric": ["cityscapes", "segm"], "format_only": True,
                               "outfile_prefix": str(tmp_path / "out" / "results")})
    metric.bind(dataset)
    assert run(metric, dataset) == {}
    folder = tmp_path / "out" / "results.cityscapes"
    lines = (folder / "aachen_000000_000019_pred.txt").read_text().splitlines()
    assert lines[0] == f"aachen_000000_000019_0_car.png {CAR} 0.900000" and len(lines) == 4
    assert lines[3].split()[1] == "28"  # bus: Cityscapes label id 28
    mask = np.asarray(Image.open(folder / "aachen_000000_000019_0_car.png"))
    assert np.array_equal(mask > 0, rect(4, 24, 4, 24)) and set(np.unique(mask)) == {0, 255}
    assert (tmp_path / "out" / "results.segm.json").is_file()  # COCO's results beside them


@pytest.mark.parametrize("damage, message", [
    ("rgb", r"has shape \(64, 64, 3\); an instanceIds image has one channel"),
    ("label", r"has pixel value 65000, which names no Cityscapes label"),
    ("size", r"is 32x64 but its image is 64x64"),
    ("missing", r"does not exist"),
])
def test_bad_ground_truth_file_is_named(tmp_path, damage, message):
    dataset = dataset_of(make_layout(tmp_path))
    gt = tmp_path / "gtFine" / "val" / f"{STEMS[1]}_gtFine_instanceIds.png"
    ids = np.asarray(Image.open(gt)).copy()
    if damage == "rgb":
        Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(gt)
    elif damage == "label":
        ids[0, 0] = 65000
        Image.fromarray(ids).save(gt)
    elif damage == "size":
        Image.fromarray(ids[:, :32]).save(gt)
    else:
        gt.unlink()
    metric = build("metrics", {"type": "CityscapesMetric"})
    metric.bind(dataset)
    with pytest.raises(DataError, match=rf"{gt.name}.* {message}" if damage != "missing" else message) as info:
        run(metric, dataset)
    assert str(gt) in str(info.value)


def test_cityscapes_is_not_cocometric(tmp_path):
    with pytest.raises(ConfigError, match="CityscapesMetric"):
        build("metrics", {"type": "CocoMetric", "metric": ["bbox", "cityscapes"]})
