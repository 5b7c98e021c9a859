"""RetinaNet-FreeAnchor against MMDetection 3.3: the fixture's seeded weights through ``retinanet_free_anchor_r50_fpn_1x_coco`` give MMDetection's
detections (>= 99% matched) and its positive and negative bag losses (within 1e-4 relative, summed over levels)."""

from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.fixture(scope="module")
def fixture_and_model():
    return load_fixture(FIXTURES / "retinanet_free_anchor_r50_fpn_1x_coco")


def test_detections_match_mmdetection(fixture_and_model):
    fixture, model = fixture_and_model
    assert match_rate(fixture.detections(), fixture_detections(model, fixture)) >= 0.99


def test_losses_match_mmdetection(fixture_and_model):
    assert loss_mismatches(*fixture_and_model[::-1]) == {}
