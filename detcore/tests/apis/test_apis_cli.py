"""The train / test / infer / demo / analyze-logs subcommands, run in-process on a toy detector."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detcore.cli.commands import infer as infer_cli
from detcore.cli.commands import logs as logs_cli
from detcore.cli.commands import training as training_cli
from detcore.engine import load_checkpoint
from detcore.errors import ConfigError, DataError

TOYS = Path(__file__).parents[1] / "engine" / "toy_components.py"

TOY_CONFIG = (Path(__file__).parents[1] / "engine" / "toy_config.toml").read_text()

SHAPES_CONFIG = """
seed = 0
train_pipeline = [
    { type = "LoadImageFromFile" },
    { type = "LoadAnnotations", with_bbox = true },
    { type = "Normalize", mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] },
    { type = "PackDetInputs" },
]
test_pipeline = [
    { type = "LoadImageFromFile" },
    { type = "Normalize", mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] },
    { type = "PackDetInputs" },
]
[model]
type = "ToyDetector"
[train_dataloader]
batch_size = 4
[train_dataloader.dataset]
type = "CocoDataset"
ann_file = "set-by-demo"
pipeline = "train_pipeline"
[val_dataloader]
batch_size = 4
[val_dataloader.dataset]
type = "CocoDataset"
ann_file = "set-by-demo"
pipeline = "test_pipeline"
test_mode = true
[evaluation]
metric = ["bbox"]
[optimizer]
type = "SGD"
lr = 0.01
[runner]
type = "EpochBasedRunner"
max_epochs = 1
[log]
interval = 1
"""


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="detcore")
    sub = parser.add_subparsers(dest="command")
    training_cli.register(sub)
    infer_cli.register(sub)
    logs_cli.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.handler(args)


@pytest.fixture
def toy_config(tmp_path, fake_dist):
    fake_dist("detcore-toys", entry_points={
        "detcore.detectors": {"ToyDetector": "detcore_toys:ToyDetector"},
        "detcore.datasets": {"ToyDataset": "detcore_toys:ToyDataset"},
    }, files={"detcore_toys.py": TOYS.read_text()})
    path = tmp_path / "toy.toml"
    path.write_text(TOY_CONFIG)
    return path


def test_train_test_infer_round_trip(toy_config, tmp_path, capsys):
    work = tmp_path / "work"
    assert cli("train", toy_config, "--work-dir", work, "--set", "runner.max_epochs=1", "--deterministic") == 0
    assert (work / "epoch_1.pth").is_file() and not (work / "epoch_2.pth").exists()
    # --resume continues from the latest checkpoint up to the configured 2 epochs
    assert cli("train", toy_config, "--work-dir", work, "--resume") == 0
    assert load_checkpoint(work / "latest.pth")["meta"]["epoch"] == 2
    capsys.readouterr()

    out = tmp_path / "preds.json"
    assert cli("test", toy_config, work / "latest.pth", "--work-dir", work, "--metrics", "bbox", "--out", out) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out.strip().splitlines()[-1])
    assert set(metrics) >= {"bbox_mAP", "bbox_mAP_50"} and 0.0 <= metrics["bbox_mAP"] <= 1.0
    assert re.search(r"predicted 4 images in [0-9.]+ s \([0-9.]+ images/s\)", captured.err)
    preds = json.loads(out.read_text())
    assert sorted(p["image_id"] for p in preds) == [0, 1, 2, 3] and len(preds[0]["boxes"]) == 1
    # the plain model and bf16 autocast: the same predictions up to bf16 rounding
    for flags in (["--no-fast"], ["--precision", "bf16"]):
        other = tmp_path / f"preds{len(flags)}.json"
        assert cli("test", toy_config, work / "latest.pth", "--work-dir", work, "--out", other, *flags) == 0
        for ours, theirs in zip(preds, json.loads(other.read_text())):
            tol = 1e-5 if flags == ["--no-fast"] else 0.5
            assert np.allclose(ours["boxes"], theirs["boxes"], atol=tol)
    with pytest.raises(ConfigError, match="fp16.*CUDA"):
        cli("test", toy_config, work / "latest.pth", "--work-dir", work, "--precision", "fp16")

    assert cli("test", toy_config, work / "latest.pth", "--work-dir", work, "--format-only",
               "--outfile-prefix", tmp_path / "export" / "res") == 0
    exported = json.loads((tmp_path / "export" / "res.bbox.json").read_text())
    assert len(exported) == 4 and {"image_id", "category_id", "bbox", "score"} <= set(exported[0])

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 40, 3), 60 * i, np.uint8)).save(images / f"im{i}.png")
    assert cli("infer", toy_config, work / "latest.pth", images, "--out-dir", tmp_path / "vis", "--score-thr", "0") == 0
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["detections.json", "im0.png", "im1.png"]
    records = json.loads((tmp_path / "vis" / "detections.json").read_text())
    assert len(records) == 2 and records[0]["detections"][0]["class"] in ("square", "bar", "dot")
    with pytest.raises(DataError, match="nothing.png"):
        cli("infer", toy_config, work / "latest.pth", tmp_path / "nothing.png", "--out-dir", tmp_path / "vis")


def test_demo_with_a_given_config(toy_config, tmp_path, capsys):
    config = tmp_path / "shapes_toy.toml"
    config.write_text(SHAPES_CONFIG)
    work = tmp_path / "demo"
    assert cli("demo", "--work-dir", work, "--config", config, "--num-train", "8", "--num-val", "4",
               "--image-size", "48", "--epochs", "2") == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "bbox_mAP" in line and line["config"] == str(config)
    for key in ("visualization", "loss_curve"):
        assert Image.open(line[key]).size[0] > 0
    assert (work / "shapes" / "annotations" / "instances_train.json").is_file()
    assert load_checkpoint(work / "latest.pth")["meta"]["epoch"] == 2  # --epochs overrides the config's 1


def test_demo_names_missing_family_configs(monkeypatch):
    from detcore.errors import ConfigError

    with pytest.raises(ConfigError, match="no_such_config"):
        training_cli.pick_demo_config(("no_such_config",))
    assert training_cli.pick_demo_config(("missing_one", "coco_detection")) == "coco_detection"


def write_log(path: Path, times_by_epoch: dict[int, list[float]]) -> None:
    lines = [json.dumps({"mode": "meta", "seed": 0})]
    step = 0
    for epoch, times in times_by_epoch.items():
        for i, t in enumerate(times):
            step += 1
            lines.append(json.dumps({"mode": "train", "epoch": epoch, "iter": i + 1, "global_iter": step,
                                     "time": t, "loss": 2.0 / step, "loss_cls": 1.0 / step}))
        lines.append(json.dumps({"mode": "val", "epoch": epoch, "iter": step, "bbox_mAP": 0.1 * epoch}))
    path.write_text("\n".join(lines) + "\n")


def test_cal_train_time_numbers(tmp_path, capsys):
    log = tmp_path / "run.log.json"
    write_log(log, {1: [9.0, 1.0, 3.0], 2: [9.0, 2.0, 2.0], 3: [9.0, 4.0, 4.0]})
    assert cli("analyze-logs", "cal-train-time", log) == 0
    out = capsys.readouterr().out
    # first record of each epoch dropped: means 2, 2, 4 -> std sqrt(8/9)
    assert "slowest epoch 3, average time is 4.0000" in out
    assert "fastest epoch 1, average time is 2.0000" in out
    assert f"time std over epochs is {np.sqrt(8 / 9):.4f}" in out
    assert f"average iter time: {8 / 3:.4f} s/iter" in out
    assert cli("analyze-logs", "cal-train-time", log, "--include-outliers") == 0
    assert f"average iter time: {(13 / 3 + 13 / 3 + 17 / 3) / 3:.4f}" in capsys.readouterr().out


def test_plot_writes_png(tmp_path):
    log = tmp_path / "run.log.json"
    write_log(log, {1: [1.0, 1.0], 2: [1.0, 1.0]})
    out = tmp_path / "plots" / "curve.png"
    assert cli("analyze-logs", "plot", log, "--keys", "loss_cls", "loss", "--out", out) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (800, 500)
    assert cli("analyze-logs", "plot", log, "--keys", "bbox_mAP", "--out", tmp_path / "map.png") == 0
    with pytest.raises(DataError, match="loss_rpn"):
        cli("analyze-logs", "plot", log, "--keys", "loss_rpn", "--out", tmp_path / "x.png")
    bad = tmp_path / "bad.log.json"
    bad.write_text('{"mode": "train"}\nnot json\n')
    with pytest.raises(DataError, match="line 2"):
        cli("analyze-logs", "plot", bad, "--out", tmp_path / "y.png")


TTA_CONFIG = """
seed = 0
train_pipeline = [
    { type = "LoadImageFromFile" },
    { type = "LoadAnnotations", with_bbox = true },
    { type = "Normalize", mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] },
    { type = "PackDetInputs" },
]
test_pipeline = [
    { type = "LoadImageFromFile" },
    { type = "MultiScaleFlipAug", scale = [48, 48], flip = true, transforms = [
        { type = "Resize", keep_ratio = true },
        { type = "RandomFlip" },
        { type = "Normalize", mean = [0.0, 0.0, 0.0], std = [255.0, 255.0, 255.0] },
        { type = "PackDetInputs" },
    ] },
]
[model]
type = "ToyDetector"
[train_dataloader]
batch_size = 2
[train_dataloader.dataset]
type = "CocoDataset"
data_root = "DATA"
ann_file = "annotations/instances_train.json"
img_prefix = "train/"
pipeline = "train_pipeline"
[test_dataloader]
batch_size = 2
[test_dataloader.dataset]
type = "CocoDataset"
data_root = "DATA"
ann_file = "annotations/instances_val.json"
img_prefix = "val/"
pipeline = "test_pipeline"
test_mode = true
[evaluation]
metric = ["bbox"]
[optimizer]
type = "SGD"
lr = 0.01
[runner]
type = "EpochBasedRunner"
max_epochs = 1
[log]
interval = 1
"""


def test_test_with_flip_tta_out_and_show_dir(toy_config, tmp_path, capsys, monkeypatch):
    from detcore.data.shapes import make_shapes
    from detcore.interfaces import Detector

    data = tmp_path / "shapes"
    make_shapes(data, num_train=2, num_val=3, size=40, seed=0)
    config = tmp_path / "toy_tta.toml"
    config.write_text(TTA_CONFIG.replace("DATA", data.as_posix()))
    work = tmp_path / "work"
    assert cli("train", config, "--work-dir", work) == 0
    capsys.readouterr()

    views_seen: list[list[bool]] = []
    merge = Detector.predict_tta

    def recording_predict_tta(self, batches):
        views_seen.append([b.metas[0].flip for b in batches])
        return merge(self, batches)

    monkeypatch.setattr(Detector, "predict_tta", recording_predict_tta)
    out, show = tmp_path / "preds.json", tmp_path / "show"
    assert cli("test", config, work / "latest.pth", "--work-dir", work, "--out", out, "--show-dir", show,
               "--show-score-thr", "0") == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"bbox_mAP", "bbox_mAP_50"} <= set(metrics) and 0.0 <= metrics["bbox_mAP"] <= 1.0
    # two batches (2 + 1 images) of two views each (as is, flipped), merged per image
    assert views_seen == [[False, True], [False, True]]
    preds = json.loads(out.read_text())
    assert sorted(p["image_id"] for p in preds) == [1, 2, 3]
    assert all(1 <= len(p["boxes"]) <= 2 for p in preds)  # one box per view before class-wise NMS
    images = sorted(p.stem for p in (data / "val").iterdir())
    assert sorted(p.stem for p in show.iterdir()) == images and all(p.suffix == ".png" for p in show.iterdir())
    assert Image.open(next(show.iterdir())).size == (40, 40)


def test_test_tta_option_runs_the_tta_pipeline(toy_config, tmp_path, capsys, monkeypatch):
    """``--tta`` swaps the test pipeline for the config's ``tta_pipeline``; without one it says what to add."""
    from detcore.data.shapes import make_shapes
    from detcore.interfaces import Detector

    data = tmp_path / "shapes"
    make_shapes(data, num_train=2, num_val=2, size=40, seed=0)
    single_view = '[\n    { type = "LoadImageFromFile" },\n    { type = "Normalize", mean = [0.0, 0.0, 0.0], ' \
                  'std = [255.0, 255.0, 255.0] },\n    { type = "PackDetInputs" },\n]\ntta_pipeline = ['
    text = TTA_CONFIG.replace("DATA", data.as_posix()).replace("test_pipeline = [", f"test_pipeline = {single_view}", 1)
    config = tmp_path / "toy_tta_option.toml"
    config.write_text(text)
    work = tmp_path / "work"
    assert cli("train", config, "--work-dir", work) == 0
    views_seen: list[int] = []
    merge = Detector.predict_tta

    def recording_predict_tta(self, batches):
        views_seen.append(len(batches))
        return merge(self, batches)

    monkeypatch.setattr(Detector, "predict_tta", recording_predict_tta)
    assert cli("test", config, work / "latest.pth", "--work-dir", work) == 0 and views_seen == []
    assert cli("test", config, work / "latest.pth", "--work-dir", work, "--tta") == 0 and views_seen == [2]
    config.write_text(TTA_CONFIG.replace("DATA", data.as_posix()))
    with pytest.raises(ConfigError, match="tta_pipeline"):
        cli("test", config, work / "latest.pth", "--work-dir", work, "--tta")


@pytest.mark.parametrize("native, choice, overrides, expected", [
    (True, "auto", [], "bf16"),  # native bf16: the demo trains in bf16 AMP, channels-last
    (False, "auto", [], "fp32"),  # emulated bf16 is slower than fp32
    (False, "bf16", [], "bf16"),  # asked for explicitly
    (True, "fp32", [], "fp32"),
    (True, "auto", ["amp.enable=false"], "fp32"),  # --set wins over --precision
    (False, "auto", ["+channels_last=true", "amp.enable=true"], "bf16"),
])
def test_demo_precision(monkeypatch, native, choice, overrides, expected):
    import torch

    from detcore.engine import amp

    monkeypatch.setattr(amp, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = {"amp": {"enable": any(o.startswith("amp.enable=true") for o in overrides), "dtype": "auto"},
           "channels_last": False}
    before = json.dumps(cfg)
    assert training_cli._demo_precision(cfg, choice, overrides) == expected
    if overrides:
        assert json.dumps(cfg) == before  # the user's settings are left as given
    else:
        assert cfg["amp"]["enable"] == (expected == "bf16") and cfg["channels_last"] == (expected == "bf16")


def test_cpu_has_native_bf16_reads_torch_cpu_flags(monkeypatch):
    import torch

    from detcore.engine.amp import cpu_has_native_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_has_native_bf16() is False
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert cpu_has_native_bf16() is True
