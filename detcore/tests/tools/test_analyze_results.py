"""``detcore analyze-results`` on a hand-made result file whose error buckets are worked out by hand.

One image; class A (supercategory "shape") has 4 objects, B ("shape") and C ("thing") one each.
A's detections, best score first: on B's object (Sim), on C's object (Oth), on background (BG),
then IoU 0.81 (right at .75), IoU 0.6 (right at .5), IoU 0.3 (right at .1 only); one A object is missed.
COCO AP is the mean precision (monotone envelope) at 101 recall points:
  C75: 1 right in 4 shown -> 0.25 up to recall .25  -> 26 * 0.25 / 101
  C50: 2 right in 5       -> 0.4  up to recall .5   -> 51 * 0.4 / 101
  Loc: 3 right in 6       -> 0.5  up to recall .75  -> 76 * 0.5 / 101
  Sim: B's object ignored -> 3 in 5 = 0.6           -> 76 * 0.6 / 101
  Oth: C's too            -> 3 in 4 = 0.75          -> 76 * 0.75 / 101
  BG : precision 1 up to recall .75                 -> 76 / 101;  FN: 1
B and C have no detections: 0 except FN = 1. The overall curve is the mean of the three classes.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from detcore.cli.main import main

A_BOXES = [[10, 10, 40, 40], [60, 10, 40, 40], [110, 10, 40, 40], [160, 10, 30, 30]]  # x, y, w, h
B_BOX, C_BOX = [10, 100, 40, 40], [110, 100, 40, 40]
EXPECTED_A = {"C75": 26 * 0.25 / 101, "C50": 51 * 0.4 / 101, "Loc": 76 * 0.5 / 101, "Sim": 76 * 0.6 / 101,
              "Oth": 76 * 0.75 / 101, "BG": 76 / 101, "FN": 1.0}


def _write_files(tmp_path):
    categories = [{"id": 1, "name": "A", "supercategory": "shape"}, {"id": 2, "name": "B", "supercategory": "shape"},
                  {"id": 3, "name": "C", "supercategory": "thing"}]
    boxes = [(1, b) for b in A_BOXES] + [(2, B_BOX), (3, C_BOX)]
    annotations = [{"id": i + 1, "image_id": 1, "category_id": c, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
                   for i, (c, b) in enumerate(boxes)]
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": 200, "height": 160}],
          "annotations": annotations, "categories": categories}
    detections = [
        (B_BOX, 0.95),  # Sim
        (C_BOX, 0.94),  # Oth
        ([10, 60, 20, 20], 0.93),  # BG
        ([12, 10, 36, 40], 0.90),  # IoU 36*40 / 1600 = 0.9 -> right at .75
        ([60, 10, 40, 24], 0.80),  # IoU 0.6
        ([110, 10, 40, 12], 0.70),  # IoU 0.3
    ]
    results = [{"image_id": 1, "category_id": 1, "bbox": b, "score": s} for b, s in detections]
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "results.json").write_text(json.dumps(results))


def test_buckets_of_a_hand_made_result_file(tmp_path, capsys):
    _write_files(tmp_path)
    out = tmp_path / "analysis"
    assert main(["analyze-results", str(tmp_path / "results.json"), str(tmp_path / "gt.json"),
                 "--out-dir", str(out), "--areas", "all", "medium"]) == 0
    summary = json.loads((out / "bbox" / "summary.json").read_text())
    for bucket, value in EXPECTED_A.items():
        assert summary["A"]["all"][bucket] == pytest.approx(value, abs=1e-9), bucket
    for name in ("B", "C"):
        assert summary[name]["all"] == {**{b: 0.0 for b in EXPECTED_A}, "FN": 1.0}
    for bucket, value in EXPECTED_A.items():
        expected_overall = (value + (1.0 if bucket == "FN" else 0.0) * 2) / 3
        assert summary["allclass"]["all"][bucket] == pytest.approx(expected_overall, abs=1e-9), bucket
    # medium (32^2 < area <= 96^2): the 30x30 missed object leaves the count (3 objects), and unmatched small
    # detections (the 20x20 background one, and at IoU .75 the 40x24 and 40x12 ones) are ignored:
    # Sim, Oth wrong, then right -> precision 1/3 up to recall 1/3 -> 34 * (1/3) / 101
    assert summary["A"]["medium"]["C75"] == pytest.approx(34 / 3 / 101, abs=1e-9)
    for name in ("A", "B", "C", "allclass"):
        for area in ("all", "medium"):
            width, height = Image.open(out / "bbox" / f"{name}-{area}.png").size
            assert width >= 500 and height >= 400
    printed = capsys.readouterr().out
    assert "C75" in printed and "allclass" in printed


def test_malformed_result_file_names_the_entry(tmp_path, capsys):
    _write_files(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1.0}]))
    assert main(["analyze-results", str(tmp_path / "results.json"), str(tmp_path / "gt.json"),
                 "--out-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "entry 0" in err and "category_id" in err and "results.json" in err
