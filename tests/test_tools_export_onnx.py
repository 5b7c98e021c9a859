"""``detcore export onnx``: the exported graphs run in onnxruntime (post-processing outside them, by detcore's
code) give a trained shapes detector's detections: boxes within 1e-3 px, scores within 1e-4. A single-stage
detector is one graph; Mask R-CNN is three (features + RPN maps, RoIAlign + box head, mask head)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detcore.apis import inference_detector, init_detector
from detcore.cli.main import main

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_export_onnx_matches_detcore(trained_shapes, tmp_path, capsys):
    from detcore.tools.onnx_export import OnnxDetector

    out = tmp_path / "model.onnx"
    images = sorted((trained_shapes.data_dir / "val").glob("*.png"))
    code = main(["export", "onnx", str(trained_shapes.config_file), str(trained_shapes.checkpoint), str(out),
                 "--shape", "96", "96", "--verify", str(images[0])])
    assert code == 0 and out.is_file()
    verify = json.loads(capsys.readouterr().out.splitlines()[-1])
    print(json.dumps(verify))  # -s shows the measured differences
    assert verify["max_box_diff"] <= 1e-3 and verify["max_score_diff"] <= 1e-4

    model = init_detector(str(trained_shapes.config_file), trained_shapes.checkpoint)
    runtime = OnnxDetector(out, str(trained_shapes.config_file), trained_shapes.checkpoint)
    compared = 0
    with torch.inference_mode():
        for image in images:
            ours, theirs = inference_detector(model, image), runtime(image)
            assert len(ours) == len(theirs)
            torch.testing.assert_close(theirs.boxes, ours.boxes, atol=1e-3, rtol=0)
            torch.testing.assert_close(theirs.scores, ours.scores, atol=1e-4, rtol=0)
            assert torch.equal(theirs.labels, ours.labels)
            compared += int((ours.scores > 0.3).sum())
    assert compared > 0  # the trained detector finds objects, so the comparison covers real detections

    # the image size is dynamic: a size other than the traced one gives the same raw maps
    images_tensor = torch.rand(2, 3, 128, 160)
    with torch.inference_mode():
        expected = model.forward_tensor(images_tensor)
    got = runtime.run_graph(images_tensor)
    for group_expected, group_got in zip(expected, got):
        for a, b in zip(group_expected, group_got):
            assert a.shape == b.shape
            torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_export_onnx_two_stage_matches_detcore(trained_two_stage, tmp_path, capsys):
    from detcore.tools.onnx_export import OnnxDetector

    out = tmp_path / "mask_rcnn.onnx"
    images = sorted((trained_two_stage.data_dir / "train").glob("*.png"))
    code = main(["export", "onnx", str(trained_two_stage.config_file), str(trained_two_stage.checkpoint), str(out),
                 "--shape", "96", "96", "--verify", str(images[0])])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(str(tmp_path / f"mask_rcnn.{name}.onnx") in lines[-2] for name in ("rcnn", "mask"))
    verify = json.loads(lines[-1])
    print(json.dumps(verify))
    assert verify["detections"][0] == verify["detections"][1] > 0
    assert verify["max_box_diff"] <= 1e-3 and verify["max_score_diff"] <= 1e-4

    model = init_detector(str(trained_two_stage.config_file), trained_two_stage.checkpoint)
    runtime = OnnxDetector(out, str(trained_two_stage.config_file), trained_two_stage.checkpoint)
    rng = np.random.default_rng(0)
    # the shapes images, then a batch of two other sizes than the traced 96 x 96 (dynamic size and batch)
    inputs = [*images[:6], [rng.integers(0, 255, (128, 160, 3), dtype=np.uint8),
                            rng.integers(0, 255, (72, 200, 3), dtype=np.uint8)]]
    confident = 0
    for item in inputs:
        with torch.inference_mode():
            ours = inference_detector(model, item)
        theirs = runtime(item)
        for a, b in zip(*((ours, theirs) if isinstance(item, list) else ([ours], [theirs]))):
            assert len(a) == len(b)
            torch.testing.assert_close(b.boxes, a.boxes, atol=1e-3, rtol=0)
            torch.testing.assert_close(b.scores, a.scores, atol=1e-4, rtol=0)
            assert torch.equal(b.labels, a.labels)
            assert b.masks.shape == a.masks.shape
            if len(a):  # (a random-noise image may give no detection on either side)
                assert (b.masks != a.masks).float().mean() <= 1e-4  # pixels of probability ~0.5 may round either way
            confident += int((a.scores > 0.3).sum())
    assert confident > 0  # the trained detector finds objects, so real detections are compared
