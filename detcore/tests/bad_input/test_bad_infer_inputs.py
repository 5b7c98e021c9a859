"""Problem 5 of issue 17 (``detcore infer`` on folders) and issue 15's video input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


def image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 40, 3), value, np.uint8)).save(path)
    return path


def test_folders_keep_relative_names_and_report_failures(toy_config, weights, tmp_path, detcore):
    root = tmp_path / "inputs"
    image(root / "x.png", 10)
    image(root / "a" / "x.png", 20)
    image(root / "b" / "x.png", 30)
    image(root / "b" / "x.jpg", 40)
    (root / "b" / "broken.png").write_bytes(b"no image here")
    (root / "notes.txt").write_text("not an image")
    out = tmp_path / "vis"
    result = detcore("infer", toy_config, weights, root, "--out-dir", out, "--score-thr", "0")
    assert result.code == 1  # partial failure: non-zero, everything else written
    drawings = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert drawings == ["a/x.png", "b/x.jpg.png", "b/x.png", "x.png"]
    records = json.loads((out / "detections.json").read_text())
    assert sorted(r["drawing"] for r in records) == drawings and all(r["detections"] for r in records)
    assert "broken.png" in result.err and "corrupt or not an image" in result.err
    assert "1 input(s) failed" in result.err
    assert "notes.txt: not an image" in result.err and "1 non-image file(s)" in result.err
    assert "drew 4 image(s)" in result.out


def test_two_input_folders_with_the_same_names(toy_config, weights, tmp_path, detcore):
    first, second = image(tmp_path / "day1" / "cam.png", 0), image(tmp_path / "day2" / "cam.png", 90)
    out = tmp_path / "vis"
    assert detcore("infer", toy_config, weights, first.parent, second.parent, "--out-dir", out).code == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["day1/cam.png", "day2/cam.png"]


def test_all_inputs_unreadable_still_writes_detections_json(toy_config, weights, tmp_path, detcore):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    out = tmp_path / "vis"
    result = detcore("infer", toy_config, weights, bad, "--out-dir", out)
    assert result.code == 1 and json.loads((out / "detections.json").read_text()) == []


def test_video_input_writes_an_annotated_video(toy_config, weights, tmp_path, detcore):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (48, 32))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v")
    for i in range(6):
        writer.write(np.full((32, 48, 3), 40 * i, np.uint8))
    writer.release()
    out = tmp_path / "vis"
    result = detcore("infer", toy_config, weights, video, "--out-dir", out, "--score-thr", "0", "--max-frames", "4")
    assert result.code == 0, result.err
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = capture.read()
    capture.release()
    assert frames == 4 and ok and frame.shape == (32, 48, 3)
    records = json.loads((out / "detections.json").read_text())
    assert [r["frame"] for r in records] == [0, 1, 2, 3] and records[0]["file"] == str(video)
    assert "4/4" in result.err  # the progress display


def test_video_without_opencv_names_the_extra(toy_config, weights, tmp_path, detcore, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    result = detcore("infer", toy_config, weights, video, "--out-dir", tmp_path / "vis")
    assert result.code == 2 and 'pip install "detcore[video]"' in result.err
