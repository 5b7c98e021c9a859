"""Every script of ``examples/`` runs as a user would run it (a subprocess) and gives sensible output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from detcore.data.shapes import make_shapes

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 600) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_train_on_own_coco_data_then_infer_a_folder(tmp_path):
    data = tmp_path / "my_data"
    make_shapes(data, num_train=8, num_val=3, size=96, seed=1)
    work = tmp_path / "work"
    out = last_json(run([str(EXAMPLES / "train_custom_coco.py"), "--data-root", str(data), "--work-dir", str(work),
                         "--epochs", "2", "--image-size", "96", "--batch-size", "4"]))
    categories = json.loads((data / "annotations" / "instances_train.json").read_text())["categories"]
    assert out["classes"] == [c["name"] for c in sorted(categories, key=lambda c: c["id"])]
    assert 0.0 <= out["bbox_mAP"] <= 1.0
    assert (work / "latest.pth").is_file() and (work / "config.toml").is_file()

    vis = tmp_path / "vis"
    printed = run([str(EXAMPLES / "infer_folder.py"), str(work / "config.toml"), str(work / "latest.pth"),
                   str(data / "val"), "--out-dir", str(vis), "--score-thr", "0.0"])
    assert printed.startswith("3 images")
    records = json.loads((vis / "detections.json").read_text())
    assert sorted(r["file"] for r in records) == sorted(p.name for p in (data / "val").glob("*.png"))
    for record in records:
        assert Image.open(vis / record["file"]).size == (96, 96)
        for det in record["detections"]:
            assert det["class"] in out["classes"] and len(det["box"]) == 4


def test_export_onnx_example(trained_shapes, tmp_path):
    pytest.importorskip("onnxruntime")
    image = sorted((trained_shapes.data_dir / "train").glob("*.png"))[0]
    out = last_json(run([str(EXAMPLES / "export_onnx.py"), str(trained_shapes.config_file),
                         str(trained_shapes.checkpoint), str(tmp_path / "model.onnx"), "--image", str(image)]))
    assert (tmp_path / "model.onnx").is_file()
    assert out["same_count"] and out["detections"] > 0
    assert out["max_box_diff"] <= 1e-3 and out["max_score_diff"] <= 1e-4


def test_plugin_neck_example_installs_and_trains_from_its_config(tmp_path):
    source = tmp_path / "plugin_src"
    shutil.copytree(EXAMPLES / "plugin_neck", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    listed = run(["-m", "detcore.cli.main", "list-components", "--kind", "necks"], env)
    assert any("SumNeck" in line and "det-example-neck" in line for line in listed.splitlines()), listed

    data = tmp_path / "shapes"
    make_shapes(data, num_train=6, num_val=2, size=96, seed=2)
    sets = [f'{loader}.dataset.data_root="{data}"' for loader in ("train_dataloader", "val_dataloader", "test_dataloader")]
    sets += ["train_dataloader.num_workers=0", "train_dataloader.persistent_workers=false",
             "train_dataloader.batch_size=3", "runner.max_epochs=1", "checkpoint.interval=1", "evaluation.interval=1",
             "lr_config.warmup_iters=2"]
    work = tmp_path / "work"
    run(["-m", "detcore.cli.main", "train", "fcos_r18_sumneck_shapes", "--work-dir", str(work), "--set", *sets], env)
    import torch

    state = torch.load(work / "latest.pth", weights_only=True)["state_dict"]
    assert "neck.lateral_convs.2.weight" in state and not any(k.startswith("neck.fpn_convs") for k in state)
    log = next(work.glob("*.log.json")).read_text().splitlines()
    assert any("bbox_mAP" in line for line in log)
