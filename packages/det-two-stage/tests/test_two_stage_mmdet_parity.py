"""Faster / Mask R-CNN against MMDetection 3.3: the fixture's seeded weights through our config of the same
name give MMDetection's detections and masks (their losses sample at random, so they are not compared)."""

from pathlib import Path

import pytest

from det_common.parity import MMDetFixture, fixture_detections, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.mark.parametrize("name", ["faster_rcnn_r50_fpn_1x_coco", "mask_rcnn_r50_fpn_1x_coco"])
def test_detections_match_mmdetection(name):
    fixture = MMDetFixture(FIXTURES / name)
    ours, reference = fixture_detections(name, fixture), fixture.detections()
    assert ours.has("masks") == reference.has("masks")
    assert match_rate(reference, ours) >= 0.99
