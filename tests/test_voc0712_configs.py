"""The VOC configs (``faster_rcnn_r50_fpn_1x_voc0712``, ``retinanet_r50_fpn_1x_voc0712``) on a tiny VOCdevkit in
the official layout: VOC2007 + VOC2012 trainval repeated 3 times, 20 classes, one training step, VOC07 mAP and
recall on VOC2007 test."""

from __future__ import annotations

import math

import pytest
import torch

from detcore.config import load_config
from detcore.data.layouts import make_voc
from detcore.engine.settings import resolve_pipelines
from detcore.registry import build
from detcore.structures import collate


def _point_at(dataset: dict, root: str) -> None:
    if "datasets" in dataset:
        for child in dataset["datasets"]:
            _point_at(child, root)
    elif "dataset" in dataset:
        _point_at(dataset["dataset"], root)
    else:
        dataset["data_root"] = root


@pytest.mark.parametrize("name", ["faster_rcnn_r50_fpn_1x_voc0712", "retinanet_r50_fpn_1x_voc0712"])
def test_voc0712_config_trains_and_evaluates(name, tmp_path):
    devkit = make_voc(tmp_path, splits={"trainval": 4, "test": 2}, size=96)
    cfg = load_config(name)
    assert cfg["runner"]["max_epochs"] == 4 and cfg["lr_config"]["steps"] == [3] and cfg["optimizer"]["lr"] == 0.01
    for pipeline in (cfg["train_pipeline"], cfg["test_pipeline"]):
        for step in pipeline:
            if step["type"] == "Resize":
                step["scale"] = [128, 128]
    cfg = resolve_pipelines(cfg)
    for key in ("train_dataloader", "test_dataloader"):
        _point_at(cfg[key]["dataset"], str(devkit))
    train = build("datasets", cfg["train_dataloader"]["dataset"])
    assert len(train) == 3 * (4 + 4)  # RepeatDataset(times 3) of VOC2007 + VOC2012 trainval
    test = build("datasets", cfg["test_dataloader"]["dataset"])
    assert len(test) == 2 and len(test.classes) == 20

    torch.manual_seed(0)
    model = build("detectors", cfg["model"])
    # 20 classes: Faster R-CNN's classifier has 21 outputs (background), RetinaNet's 9 anchors x 20
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert any(getattr(m, "out_features", None) == 21 or getattr(m, "out_channels", None) == 9 * 20 for m in layers)
    model.train()
    losses = model.loss(collate([train[0], train[1]]))
    total = sum(v for k, v in losses.items() if "loss" in k)
    assert math.isfinite(float(total))
    total.backward()

    model.eval()
    metric = build("metrics", {**{k: v for k, v in cfg["evaluation"].items() if k != "interval"},
                               "metric": ["mAP", "recall"]})
    metric.bind(test)
    with torch.no_grad():
        batch = collate([test[0], test[1]])
        metric.process(batch, model.predict(batch))
    out = metric.compute()
    assert 0.0 <= out["mAP"] <= 1.0 and "AR@100" in out and "recall@1000@0.5" in out
