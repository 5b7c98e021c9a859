"""mPC / rPC arithmetic (Michaelis et al., 2019) and where ``Corrupt`` goes in the test pipeline."""

from __future__ import annotations

import pytest

from detcore.errors import ConfigError
from detcore.tools.robustness import RobustnessReport, corrupted_config


def test_mpc_rpc_from_hand_numbers():
    report = RobustnessReport("bbox_mAP", 0.40, {"fog": {1: 0.30, 5: 0.10}, "contrast": {1: 0.35, 5: 0.05}})
    assert report.per_corruption == pytest.approx({"fog": 0.20, "contrast": 0.20})
    assert report.mpc == pytest.approx(0.20)
    assert report.rpc == pytest.approx(0.50)
    table = report.table()
    assert "mPC = 0.2000" in table and "rPC = 0.5000" in table
    assert report.to_dict()["results"]["fog"] == {"1": 0.30, "5": 0.10}


def _cfg():
    return {
        "test_pipeline": [{"type": "LoadImageFromFile"}, {"type": "Resize", "scale": [64, 64]}, {"type": "PackDetInputs"}],
        "test_dataloader": {"dataset": {"type": "CocoDataset", "pipeline": "test_pipeline"}},
        "train_dataloader": {"dataset": {}},
        "optimizer": {"type": "SGD"},
        "evaluation": {"metric": "bbox", "interval": 1},
    }


def test_corrupt_step_follows_image_loading():
    cfg = corrupted_config(_cfg(), "fog", 3, seed=5)
    steps = cfg["test_dataloader"]["dataset"]["pipeline"]
    assert [s["type"] for s in steps] == ["LoadImageFromFile", "Corrupt", "Resize", "PackDetInputs"]
    assert steps[1] == {"type": "Corrupt", "corruption": "fog", "severity": 3, "seed": 5}
    assert "train_dataloader" not in cfg and "optimizer" not in cfg and "interval" not in cfg["evaluation"]
    clean = corrupted_config(_cfg(), None, 0)
    assert [s["type"] for s in clean["test_dataloader"]["dataset"]["pipeline"]] == ["LoadImageFromFile", "Resize",
                                                                                   "PackDetInputs"]
    broken = _cfg()
    broken["test_pipeline"] = [{"type": "PackDetInputs"}]
    with pytest.raises(ConfigError, match="LoadImageFromFile"):
        corrupted_config(broken, "fog", 1)
