"""Problem 9 of issue 17, the smaller ones."""

from __future__ import annotations

import json

import pytest
import torch
from bad_input_helpers import one_paragraph


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu(toy_config, weights, tmp_path, detcore):
    import numpy as np
    from PIL import Image

    image = tmp_path / "im.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    result = detcore("infer", toy_config, weights, image, "--out-dir", tmp_path / "vis", "--device", "cuda")
    assert result.code == 2 and "device = 'cuda' asks for a GPU" in one_paragraph(result.err, "infer")
    result = detcore("train", toy_config, "--work-dir", tmp_path / "w", "--set", '+device="cuda"')
    assert result.code == 2 and "no CUDA device" in one_paragraph(result.err, "train")


def test_test_prints_progress_summary_and_valid_json(toy_config, weights, tmp_path, detcore, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # two test images: the third class has no ground truth, so its classwise AP is NaN
    result = detcore("test", toy_config, weights, "--set", "+evaluation.classwise=true",
                     "test_dataloader.dataset.num_images=2")
    assert result.code == 0, result.err
    last = result.out.strip().splitlines()[-1]
    metrics = json.loads(last, parse_constant=lambda name: pytest.fail(f"{name} in the JSON line"))
    assert metrics["bbox_AP_dot"] is None and metrics["bbox_mAP"] is not None
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all" in result.out  # the COCO summary table
    assert "test [" in result.err and "2/2" in result.err  # progress
    assert not (tmp_path / "work_dirs").exists()  # no log folder the user did not ask for
    logs = list(weights.parent.glob("*.log"))
    assert any("Average Precision" in log.read_text() for log in logs)  # beside the checkpoint


def test_a_failed_run_says_why_in_its_log(toy_config, tmp_path, detcore):
    work = tmp_path / "work"
    result = detcore("train", toy_config, "--work-dir", work, "--set", "+model.widht=4")
    message = one_paragraph(result.err, "train")
    assert result.code == 2 and "'widht'" in message
    log = next(work.glob("*.log")).read_text()
    assert "ERROR" in log and "Unknown config key 'widht'" in log


def test_set_reads_the_same_in_every_command(toy_config, tmp_path, detcore):
    shown = detcore("config", "show", toy_config, "--json", "--set", "optimizer.lr=0.5", "seed=3",
                    "--set", "log.interval=7")
    cfg = json.loads(shown.out)
    assert (cfg["optimizer"]["lr"], cfg["seed"], cfg["log"]["interval"]) == (0.5, 3, 7)
    # browse-dataset takes the same form (several after one --set, or repeated)
    from detcore.cli.main import build_parser

    parser, _ = build_parser(with_plugins=False)
    for command in (["browse-dataset", "c", "--out-dir", "o"], ["train", "c"], ["test", "c", "k"],
                    ["infer", "c", "k", "i", "--out-dir", "o"], ["config", "show", "c"]):
        args = parser.parse_args([*command, "--set", "a=1", "b=2", "--set", "c=3"])
        assert (getattr(args, "overrides", None) or args.set) == ["a=1", "b=2", "c=3"]
