"""Cascade (Mask) R-CNN against MMDetection 3.3: with the fixture's seeded weights in MMDetection's
``roi_head.bbox_head.<stage>`` layout, our config of the same name gives its detections and masks."""

from pathlib import Path

import pytest

from det_common.parity import MMDetFixture, fixture_detections, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.mark.parametrize("name", ["cascade_rcnn_r50_fpn_1x_coco", "cascade_mask_rcnn_r50_fpn_1x_coco"])
def test_stages_give_mmdetection_detections(name):
    fixture = MMDetFixture(FIXTURES / name)
    reference = fixture.detections()
    ours = fixture_detections(name, fixture)
    assert ours.has("masks") == reference.has("masks")
    assert match_rate(reference, ours) >= 0.99
