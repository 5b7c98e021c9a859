"""``detcore export onnx``: the exported graph run in onnxruntime (post-processing by the head, outside the
graph) gives a trained shapes detector's detections: boxes within 1e-3 px, scores within 1e-4."""

from __future__ import annotations

import json

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
