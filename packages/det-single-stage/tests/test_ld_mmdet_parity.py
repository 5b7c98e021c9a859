"""LD against MMDetection 3.3: the fixture's seeded student weights through ``ld_r18_gflv1_r101_fpn_coco_1x`` give
MMDetection's detections (>= 99% matched) and its GFL losses (within 1e-4 relative, summed over levels).
``loss_ld`` is not compared: the fixture's teacher had no checkpoint, its random weights are not in the fixture."""

import warnings
from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.fixture(scope="module")
def fixture_and_model():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*untrained teacher")
        return load_fixture(FIXTURES / "ld_r18_gflv1_r101_fpn_coco_1x")


def test_detections_match_mmdetection(fixture_and_model):
    fixture, model = fixture_and_model
    assert match_rate(fixture.detections(), fixture_detections(model, fixture)) >= 0.99


def test_student_losses_match_mmdetection(fixture_and_model):
    mismatches = loss_mismatches(*fixture_and_model[::-1])
    assert set(mismatches) <= {"loss_ld"}, mismatches
