"""A demo-sized training of the default shapes detector: the loss falls and the detector finds objects.

Cross-package: needs detcore and at least one detector family with a shapes config (``DEMO_CONFIGS``).
A tiny subset (12 images of 96 px) keeps it well under a minute on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from detcore.cli.commands import training as training_cli
from detcore.config import load_config
from detcore.data.shapes import make_shapes
from detcore.engine import Runner

SIZE = 96


@pytest.fixture(autouse=True)
def one_thread():
    """One thread (the cores are shared with other tests), restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train_losses(json_log: Path) -> list[float]:
    records = [json.loads(line) for line in json_log.read_text().splitlines()]
    return [r["loss"] for r in records if r.get("mode") == "train"]


def test_short_training_reduces_loss_and_detects(tmp_path):
    data_dir = tmp_path / "shapes"
    make_shapes(data_dir, num_train=12, num_val=0, size=SIZE, seed=0)
    name = training_cli.pick_demo_config()
    cfg = load_config(name, [])
    training_cli._point_at_shapes(cfg, data_dir)
    # evaluate on the training images: a short run can only be expected to fit what it has seen
    for key in ("val_dataloader", "test_dataloader"):
        cfg[key]["dataset"]["ann_file"] = "annotations/instances_train.json"
        cfg[key]["dataset"]["img_prefix"] = "train/"
        cfg[key]["num_workers"] = 0
    cfg["train_dataloader"]["num_workers"] = 0
    cfg["train_dataloader"]["batch_size"] = 4
    training_cli._resize_pipelines(cfg, SIZE)
    epochs = 20
    training_cli._demo_schedule(cfg, epochs)
    cfg["lr_config"] = {**cfg["lr_config"], "warmup_iters": 10}
    cfg["log"] = {"interval": 1}
    cfg["seed"] = 0
    runner = Runner.from_config(cfg, work_dir=tmp_path / "work")
    try:
        runner.train()
        metrics = dict(runner.val_metrics)
    finally:
        runner.close()
    losses = _train_losses(next((tmp_path / "work").glob("*.log.json")))
    assert len(losses) == epochs * 3 and all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:6]) / 6, sum(losses[-6:]) / 6
    assert last < 0.7 * first, (first, last)  # 2.7 -> 1.4 when written
    assert metrics["bbox_mAP_50"] > 0.05, metrics  # 0.17 when written
    assert metrics["bbox_mAP"] > 0.0, metrics


def test_demo_command_writes_pictures_and_one_json_line(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="detcore")
    training_cli.register(parser.add_subparsers(dest="command"))
    work = tmp_path / "demo"
    args = parser.parse_args(["demo", "--work-dir", str(work), "--num-train", "8", "--num-val", "4",
                              "--image-size", "64", "--epochs", "1",
                              "--set", "train_dataloader.num_workers=0", "val_dataloader.num_workers=0"])
    assert args.handler(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["config"] == training_cli.pick_demo_config()
    for key in ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "seconds"):
        assert isinstance(record[key], float), key
    assert 0.0 <= record["bbox_mAP"] <= 1.0
    for key in ("visualization", "grid", "loss_curve"):
        path = Path(record[key])
        assert path.parent == work and path.suffix == ".png"
        width, height = Image.open(path).size
        assert width > 0 and height > 0
