"""``detcore test`` on shapes with two-stage detectors: test-time augmentation, and the RPN -> Fast R-CNN
round trip (``test --out`` of an RPN is the proposal_file Fast R-CNN trains and tests on).

The shipped COCO configs are shrunk (half-width ResNet-18, 64 px images, 2 iterations) and pointed at
a tiny shapes dataset; everything runs through the ``detcore`` command line in-process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detcore.cli.main import main as detcore
from detcore.config import load_config
from detcore.config.toml_writer import dumps
from detcore.data.shapes import make_shapes
from detcore.registry import build

SIZE = 64


def tiny_shapes_config(name: str, data: Path) -> dict[str, Any]:
    """The shipped config ``name`` with a half-width ResNet-18 on 64 px shapes images, 2 training iterations."""
    cfg = load_config(name).to_dict()
    model = cfg["model"]
    model["backbone"].update(depth=18, base_channels=32, frozen_stages=-1, norm_eval=False)
    model["neck"].update(in_channels=[32, 64, 128, 256], out_channels=64)
    if "rpn_head" in model:
        model["rpn_head"].update(in_channels=64, feat_channels=64)
        model["test_cfg"]["rpn"].update(nms_pre=300, max_per_img=50)
    if "roi_head" in model:
        model["roi_head"]["bbox_roi_extractor"]["out_channels"] = 64
        model["roi_head"]["bbox_head"].update(in_channels=64, fc_out_channels=64, num_classes=3)
        model["train_cfg"]["rcnn"]["sampler"]["num"] = 64
    for pipeline in (cfg["train_pipeline"], cfg["test_pipeline"]):
        for step in pipeline:
            if step["type"] == "Resize":
                step["scale"] = [SIZE, SIZE]
    del cfg["val_dataloader"]
    for key, split in (("train_dataloader", "train"), ("test_dataloader", "val")):
        cfg[key].update(batch_size=2, num_workers=0)
        cfg[key]["dataset"].update(data_root=str(data), ann_file=f"annotations/instances_{split}.json",
                                   img_prefix=f"{split}/")
    cfg["optimizer"]["lr"] = 0.01
    cfg["lr_config"] = {"policy": "fixed"}
    cfg["runner"] = {"type": "IterBasedRunner", "max_iters": 2}
    cfg["checkpoint"] = {"interval": 2}
    cfg["log"] = {"interval": 1}
    return cfg


def flip_tta(pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``pipeline`` with its steps after loading wrapped in a flip ``MultiScaleFlipAug`` at the Resize scale."""
    loading = [s for s in pipeline if s["type"].startswith("Load")]
    views = [{**s, "scale": None} if s["type"] == "Resize" else s for s in pipeline if s not in loading]
    views = [{k: v for k, v in s.items() if v is not None} for s in views]
    views.insert(1, {"type": "RandomFlip"})
    return [*loading, {"type": "MultiScaleFlipAug", "scale": [SIZE, SIZE], "flip": True, "transforms": views}]


def write(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(dumps(cfg))
    return path


def last_json_line(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_faster_rcnn_flip_tta_evaluates(tmp_path, capsys):
    data = tmp_path / "shapes"
    make_shapes(data, num_train=2, num_val=3, size=SIZE, seed=0)
    cfg = tiny_shapes_config("faster_rcnn_r50_fpn_1x_coco", data)
    cfg["test_pipeline"] = flip_tta(cfg["test_pipeline"])
    assert [s["type"] for s in cfg["test_pipeline"][1]["transforms"]][:2] == ["Resize", "RandomFlip"]
    path = write(cfg, tmp_path / "faster_rcnn_tta.toml")
    assert detcore(["train", str(path), "--work-dir", str(tmp_path / "work")]) == 0
    capsys.readouterr()
    out = tmp_path / "dets.json"
    assert detcore(["test", str(path), str(tmp_path / "work" / "latest.pth"), "--work-dir", str(tmp_path / "work"),
                    "--out", str(out)]) == 0
    metrics = last_json_line(capsys)
    assert {"bbox_mAP", "bbox_mAP_50"} <= set(metrics) and 0.0 <= metrics["bbox_mAP"] <= 1.0
    records = json.loads(out.read_text())
    assert len(records) == 3  # one merged record per image, not one per view
    for record in records:
        boxes = np.asarray(record["boxes"]).reshape(-1, 4)
        assert len(boxes) <= 100 and bool((boxes >= -1).all() and (boxes <= SIZE + 1).all())


def test_rpn_proposals_feed_fast_rcnn(tmp_path, capsys):
    data = tmp_path / "shapes"
    make_shapes(data, num_train=4, num_val=2, size=SIZE, seed=0)

    rpn = write(tiny_shapes_config("rpn_r50_fpn_1x_coco", data), tmp_path / "rpn.toml")
    assert detcore(["train", str(rpn), "--work-dir", str(tmp_path / "rpn")]) == 0
    checkpoint = str(tmp_path / "rpn" / "latest.pth")
    capsys.readouterr()
    val_props, train_props = tmp_path / "props_val.json", tmp_path / "props_train.json"
    assert detcore(["test", str(rpn), checkpoint, "--out", str(val_props), "--work-dir", str(tmp_path / "rpn")]) == 0
    assert "AR@100" in last_json_line(capsys)  # proposals are evaluated by recall
    assert detcore(["test", str(rpn), checkpoint, "--out", str(train_props), "--work-dir", str(tmp_path / "rpn"),
                    "--set", "test_dataloader.dataset.ann_file=annotations/instances_train.json",
                    "test_dataloader.dataset.img_prefix=train/"]) == 0

    records = json.loads(val_props.read_text())
    assert len(records) == 2
    for record in records:
        assert 0 < len(record["boxes"]) <= 50 and len(record["scores"]) == len(record["boxes"])
        assert record["scores"] == sorted(record["scores"], reverse=True)

    fast = tiny_shapes_config("fast_rcnn_r50_fpn_1x_coco", data)
    assert [s["type"] for s in fast["train_pipeline"]][:2] == ["LoadImageFromFile", "LoadProposals"]
    fast["train_dataloader"]["dataset"]["proposal_file"] = str(train_props)
    fast["test_dataloader"]["dataset"]["proposal_file"] = str(val_props)
    # the dataset reads the records: [x1, y1, x2, y2, score] per proposal, best first
    dataset = build("datasets", {**fast["test_dataloader"]["dataset"], "pipeline": fast["test_pipeline"]})
    first = next(r for r in records if r["image_id"] == dataset.get_data_info(0)["img_id"])
    np.testing.assert_allclose(dataset.proposals[0][:, :4], first["boxes"], rtol=1e-6)
    np.testing.assert_allclose(dataset.proposals[0][:, 4], first["scores"], rtol=1e-6)
    assert dataset[0].proposals is not None and len(dataset[0].proposals) == len(first["boxes"])

    fast_path = write(fast, tmp_path / "fast_rcnn.toml")
    assert detcore(["train", str(fast_path), "--work-dir", str(tmp_path / "fast")]) == 0
    capsys.readouterr()
    assert detcore(["test", str(fast_path), str(tmp_path / "fast" / "latest.pth"),
                    "--work-dir", str(tmp_path / "fast")]) == 0
    metrics = last_json_line(capsys)
    assert {"bbox_mAP", "bbox_mAP_50"} <= set(metrics) and 0.0 <= metrics["bbox_mAP"] <= 1.0
