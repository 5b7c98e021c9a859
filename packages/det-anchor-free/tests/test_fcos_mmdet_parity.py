"""FCOS, plain and with the paper's later tricks (center sampling, distances in strides, centerness on the
regression tower, GIoU), against MMDetection 3.3: the fixtures' seeded weights through our configs of the same
names give MMDetection's detections (>= 99% matched) and its three losses (within 1e-4 relative)."""

from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"
CONFIGS = ["fcos_r50_caffe_fpn_gn-head_1x_coco", "fcos_center-normbbox-centeronreg-giou_r50_caffe_fpn_gn-head_1x_coco"]


@pytest.fixture(scope="module", params=CONFIGS)
def loaded(request):
    """(model, fixture), built once per config for both tests."""
    fixture, model = load_fixture(FIXTURES / request.param)
    return model, fixture


def test_fcos_detections_match_mmdetection(loaded):
    model, fixture = loaded
    reference = fixture.detections()
    assert len(reference) == 100 and match_rate(reference, fixture_detections(model, fixture)) >= 0.99


def test_fcos_losses_match_mmdetection(loaded):
    model, fixture = loaded
    mismatches = loss_mismatches(model, fixture)
    assert mismatches == {}, f"(ours, mmdet's) per loss: {mismatches}"
