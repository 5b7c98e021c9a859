"""Hybrid Task Cascade against MMDetection 3.3: the fixture's seeded weights (semantic head, information-flow
mask heads) loaded strictly into our config of the same name give its detections and masks."""

from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.mark.parametrize("name", ["htc_r50_fpn_1x_coco"])
def test_htc_gives_mmdetection_detections_and_masks(name):
    fixture, model = load_fixture(FIXTURES / name)
    assert model.roi_head.with_semantic and model.roi_head.mask_head[0].conv_res is None
    reference = fixture.detections()
    ours = fixture_detections(model, fixture)
    assert reference.has("masks") and ours.has("masks")
    assert match_rate(reference, ours) >= 0.99
