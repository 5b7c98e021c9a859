"""CornerNet's flip test ("mstest"): the image and its horizontal flip, the flipped view's boxes flipped back,
both views' detections merged by soft-NMS; through ``inference_detector`` and ``detcore test --tta``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from detcore import ops
from detcore.apis import inference_detector, init_detector
from detcore.cli.main import main as detcore
from detcore.config import load_config
from detcore.config.toml_writer import dumps
from detcore.data.shapes import make_shapes
from detcore.structures import Instances

MSTEST = "cornernet_hourglass104_mstest_8x6_210e_coco"
SIZE = 64


def tiny_corner_config(data: Path | None = None) -> dict[str, Any]:
    """The mstest config (its test and flip-test pipelines, its merge settings) with a one-stack hourglass of
    16-32 channels for 3 classes; with ``data``, trained 1 iteration on that shapes folder."""
    cfg = load_config(MSTEST).to_dict()
    cfg["model"]["backbone"].update(downsample_times=2, num_stacks=1, stage_channels=[16, 16, 24],
                                    stage_blocks=[1, 1, 1], feat_channel=16)
    cfg["model"]["bbox_head"].update(num_classes=3, in_channels=16, num_feat_levels=1)
    if data is not None:
        cfg["train_pipeline"] = [{"type": "LoadImageFromFile"}, {"type": "LoadAnnotations", "with_bbox": True},
                                 *cfg["test_pipeline"][2:3], {"type": "PackDetInputs"}]
        del cfg["val_dataloader"]
        for key, split in (("train_dataloader", "train"), ("test_dataloader", "val")):
            cfg[key].update(batch_size=2, num_workers=0)
            cfg[key]["dataset"].update(data_root=str(data), ann_file=f"annotations/instances_{split}.json",
                                       img_prefix=f"{split}/")
        cfg["lr_config"] = {"policy": "fixed"}
        cfg["runner"] = {"type": "IterBasedRunner", "max_iters": 1}
        cfg["checkpoint"] = {"interval": 1}
        cfg["log"] = {"interval": 1}
    return cfg


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    detector = init_detector(tiny_corner_config())
    for p in detector.bbox_head.parameters():  # spread the scores: random heads score every pair ~0.1
        p.data.add_(torch.randn_like(p) * 0.05)
    return detector


def hand_merged(views: list[Instances], iou_threshold: float = 0.5, max_per_img: int = 100) -> Instances:
    """Both views concatenated, Gaussian soft-NMS within each class, the best ``max_per_img`` by new score."""
    boxes = torch.cat([v.boxes for v in views])
    scores, labels = torch.cat([v.scores for v in views]), torch.cat([v.labels for v in views])
    kept = []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        dets, _ = ops.soft_nms(boxes[members], scores[members], iou_threshold, method="gaussian")
        kept.append(torch.cat([dets, torch.full_like(dets[:, :1], float(label))], dim=1))
    rows = torch.cat(kept)
    rows = rows[rows[:, 4].argsort(descending=True, stable=True)][:max_per_img]
    return Instances(views[0].image_size, boxes=rows[:, :4], scores=rows[:, 4], labels=rows[:, 5].long())


def test_flip_tta_equals_the_hand_merged_views(model):
    image = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
    width = image.shape[1]
    single_view, tta = model.cfg["test_pipeline"], model.cfg["tta_pipeline"]
    model.test_pipeline_cfg = single_view
    plain = inference_detector(model, image)
    on_flipped = inference_detector(model, np.ascontiguousarray(image[:, ::-1]))
    model.test_pipeline_cfg = tta
    merged = inference_detector(model, image)

    unflipped = Instances(on_flipped.image_size, boxes=on_flipped.boxes[:, [2, 1, 0, 3]] * torch.tensor(
        [-1.0, 1.0, -1.0, 1.0]) + torch.tensor([width, 0.0, width, 0.0]), scores=on_flipped.scores,
        labels=on_flipped.labels)
    expected = hand_merged([plain, unflipped])
    assert len(plain) > 3 and len(on_flipped) > 3 and len(merged) == len(expected) <= 100
    order = lambda d: torch.argsort(d.scores * 10 + d.labels * 100 + d.boxes[:, 0] * 1e-4, descending=True)  # noqa: E731
    got, want = merged[order(merged)], expected[order(expected)]
    torch.testing.assert_close(got.scores, want.scores, rtol=0, atol=1e-5)
    torch.testing.assert_close(got.labels, want.labels)
    torch.testing.assert_close(got.boxes, want.boxes, rtol=0, atol=1e-3)


def test_detcore_test_tta_runs_the_flip_test(tmp_path, capsys):
    data = tmp_path / "shapes"
    make_shapes(data, num_train=2, num_val=2, size=SIZE, seed=0)
    config = tmp_path / "cornernet_tiny_mstest.toml"
    config.write_text(dumps(tiny_corner_config(data)))
    work = tmp_path / "work"
    assert detcore(["train", str(config), "--work-dir", str(work)]) == 0
    capsys.readouterr()
    out = tmp_path / "dets.json"
    assert detcore(["test", str(config), str(work / "latest.pth"), "--work-dir", str(work), "--out", str(out),
                    "--tta"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= metrics["bbox_mAP"] <= 1.0
    records = json.loads(out.read_text())
    assert len(records) == 2 and all(len(r["boxes"]) <= 100 for r in records)  # one merged record per image
    boxes = np.concatenate([np.asarray(r["boxes"]).reshape(-1, 4) for r in records])
    assert len(boxes) and np.isfinite(boxes).all() and (boxes[:, 2:] > boxes[:, :2]).all()
