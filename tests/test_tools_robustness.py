"""``detcore test-robustness`` on a small trained shapes detector: the clean number is ``detcore test``'s,
mPC is the mean of the corrupted numbers and rPC = mPC / P; heavy corruption costs accuracy."""

from __future__ import annotations

import json

import pytest

from detcore.cli.main import main


def test_robustness_numbers(trained_shapes, tmp_path, capsys):
    cfg, ckpt = str(trained_shapes.config_file), str(trained_shapes.checkpoint)
    assert main(["test", cfg, ckpt, "--work-dir", str(tmp_path / "test")]) == 0
    clean = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["bbox_mAP"]

    out = tmp_path / "robustness.json"
    assert main(["test-robustness", cfg, ckpt, "--corruptions", "gaussian_noise", "contrast",
                 "--severities", "1", "5", "--work-dir", str(tmp_path / "rob"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["metric"] == "bbox_mAP"
    assert report["P"] == pytest.approx(clean, abs=1e-12)
    values = [report["results"][c][s] for c in ("gaussian_noise", "contrast") for s in ("1", "5")]
    assert report["mPC"] == pytest.approx(sum(values) / 4, abs=1e-12)
    assert report["rPC"] == pytest.approx(report["mPC"] / report["P"], abs=1e-12)
    assert report["per_corruption"]["contrast"] == pytest.approx(
        (report["results"]["contrast"]["1"] + report["results"]["contrast"]["5"]) / 2, abs=1e-12)
    assert clean > 0.02, clean  # the shared fixture trains briefly: its mAP is small but real
    # noise at severity 5 (sigma 0.38) and contrast at 5% leave a detector trained on clean shapes worse off
    assert report["results"]["gaussian_noise"]["5"] <= clean
    assert report["results"]["contrast"]["5"] <= clean
    assert report["mPC"] < clean
    assert "mPC" in printed and "gaussian_noise" in printed
    print(json.dumps(report))
