"""ConcatDataset, RepeatDataset and ClassBalancedDataset: indexing, flags, repeat factors, configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from detcore.config import load_config
from detcore.data.datasets.wrappers import ClassBalancedDataset, ConcatDataset, RepeatDataset
from detcore.data.loader import build_dataloader
from detcore.engine.runner import resolve_pipelines
from detcore.errors import ConfigError, DataError
from detcore.interfaces import Dataset
from detcore.registry import build

from .conftest import ann, write_coco

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
PIPELINE = [
    {"type": "LoadImageFromFile"},
    {"type": "LoadAnnotations", "with_bbox": True},
    {"type": "Resize", "scale": [64, 64], "keep_ratio": False},
    {"type": "PackDetInputs"},
]


def coco_cfg(root, name: str, labels_per_image: list[list[int]], wide: bool = True) -> dict:
    """A CocoDataset table over one image per entry of ``labels_per_image`` (category ids per image)."""
    w, h = (48, 32) if wide else (32, 48)
    images = [{"id": i + 1, "file_name": f"{name}_{i}.png", "width": w, "height": h} for i in range(len(labels_per_image))]
    anns, next_id = [], 1
    for i, cats in enumerate(labels_per_image):
        for cat in cats:
            anns.append(ann(next_id, i + 1, cat, [2.0, 2.0, 10.0, 10.0], area=100.0, iscrowd=0))
            next_id += 1
    write_coco(root, images, anns, CATS, name=f"{name}.json")
    return {"type": "CocoDataset", "data_root": str(root), "ann_file": f"{name}.json", "img_prefix": "img/",
            "pipeline": PIPELINE, "filter_empty_gt": False}


def test_concat_indexes_through_both_datasets(tmp_path):
    first = coco_cfg(tmp_path, "first", [[1], [2], [3]], wide=True)
    second = coco_cfg(tmp_path, "second", [[1, 2], [3]], wide=False)
    concat = build("datasets", {"type": "ConcatDataset", "datasets": [first, second]})
    assert isinstance(concat, Dataset) and len(concat) == 5
    assert concat.classes == ["a", "b", "c"]
    assert [concat.locate(i) for i in range(5)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert concat.locate(-1) == (1, 1)
    assert concat.flags.tolist() == [1, 1, 1, 0, 0]
    assert concat.get_data_info(3)["file_name"] == "second_0.png"
    assert concat.get_ann_info(3)["labels"].tolist() == [0, 1]
    sample = concat[4]
    assert Path(sample.meta.file_name).name == "second_1.png"
    assert sample.gt.labels.tolist() == [2]
    with pytest.raises(IndexError, match="out of range"):
        concat.locate(5)


def test_concat_rejects_different_classes(tmp_path):
    first = coco_cfg(tmp_path, "first", [[1], [2]])
    second = dict(coco_cfg(tmp_path, "second", [[1]]), classes=["a", "b"])
    with pytest.raises(DataError, match=r"datasets\[1\].*share classes"):
        ConcatDataset([first, second])
    with pytest.raises(ConfigError, match="non-empty list"):
        ConcatDataset([])
    with pytest.raises(ConfigError, match=r"datasets\[0\] needs a 'type'"):
        ConcatDataset([{"ann_file": "x.json"}])


def test_repeat_dataset(tmp_path):
    inner = coco_cfg(tmp_path, "first", [[1], [2], [3]])
    repeated = RepeatDataset(inner, times=3)
    assert len(repeated) == 9
    assert [repeated.get_data_info(i)["img_id"] for i in range(9)] == [1, 2, 3] * 3
    assert repeated.flags.tolist() == [1] * 9
    assert repeated[7].meta.image_id == 2
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="positive integer"):
            RepeatDataset(inner, times=bad)
    with pytest.raises(IndexError):
        repeated.get_data_info(9)


def test_class_balanced_repeat_factors(tmp_path):
    # category a in 8 of 10 images, b in 2, c in 1; one image without objects
    labels = [[1]] * 7 + [[1, 2], [2, 3], []]
    inner = coco_cfg(tmp_path, "lvis", labels)
    thr = 0.5
    balanced = ClassBalancedDataset(inner, oversample_thr=thr)
    # r(c) = max(1, sqrt(t / f(c))) with f = fraction of the 10 images containing c
    r = {0: max(1.0, math.sqrt(thr / 0.8)), 1: max(1.0, math.sqrt(thr / 0.2)), 2: max(1.0, math.sqrt(thr / 0.1))}
    expected = [math.ceil(r[0])] * 7 + [math.ceil(max(r[0], r[1])), math.ceil(max(r[1], r[2])), 0]
    assert balanced.repeat_factors.tolist() == expected == [1] * 7 + [2, 3, 0]
    assert len(balanced) == sum(expected)
    assert [balanced.get_data_info(i)["img_id"] for i in range(len(balanced))] == list(range(1, 8)) + [8, 8, 9, 9, 9]
    kept = ClassBalancedDataset(inner, oversample_thr=thr, filter_empty_gt=False)
    assert kept.repeat_factors.tolist()[-1] == 1 and len(kept) == len(balanced) + 1
    with pytest.raises(ConfigError, match="oversample_thr"):
        ClassBalancedDataset(inner, oversample_thr=0)


def test_wrappers_feed_the_group_sampler_and_loader(tmp_path):
    first = coco_cfg(tmp_path, "first", [[1], [2], [3]], wide=True)
    second = coco_cfg(tmp_path, "second", [[1], [3]], wide=False)
    dataset = RepeatDataset({"type": "ConcatDataset", "datasets": [first, second]}, times=2)
    loader = build_dataloader(dataset, batch_size=2, seed=0)
    seen = []
    for batch in loader:
        names = [Path(meta.file_name).name for meta in batch.metas]
        wide = {name.startswith("first") for name in names}
        assert len(wide) == 1, "a batch mixes aspect-ratio groups"
        seen += names
    assert sorted(seen) == sorted(["first_0.png", "first_1.png", "first_2.png", "second_0.png", "second_1.png"] * 2)


def test_voc0712_config_trains_on_both_years_three_times():
    cfg = resolve_pipelines(load_config("voc0712"))
    dataset = cfg["train_dataloader"]["dataset"]
    assert dataset["type"] == "RepeatDataset" and dataset["times"] == 3
    years = [d["ann_file"].split("/")[0] for d in dataset["dataset"]["datasets"]]
    assert years == ["VOC2007", "VOC2012"]
    for inner in dataset["dataset"]["datasets"]:
        assert isinstance(inner["pipeline"], list) and inner["pipeline"][0]["type"] == "LoadImageFromFile"


def test_nested_pipeline_reference_errors_name_the_path():
    cfg = {"train_dataloader": {"dataset": {"type": "RepeatDataset", "times": 2,
                                            "dataset": {"type": "CocoDataset", "pipeline": "missing_pipeline"}}}}
    with pytest.raises(ConfigError, match=r"train_dataloader\.dataset\.dataset\.pipeline names 'missing_pipeline'"):
        resolve_pipelines(cfg)

