"""VarifocalNet, FoveaBox, FSAF, AutoAssign, RepPoints and NAS-FCOS against MMDetection 3.3: each fixture's seeded
weights through our config of the same name give MMDetection's detections (>= 99% matched) and its losses (within
1e-4 relative; FSAF's summed over levels, with the logged ``num_pos`` / ``pos_recall`` of its feature selection)."""

from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"
CONFIGS = ["vfnet_r50_fpn_1x_coco", "fovea_r50_fpn_4x4_1x_coco", "fsaf_r50_fpn_1x_coco", "autoassign_r50_fpn_8x2_1x_coco",
           "reppoints_moment_r50_fpn_1x_coco", "nas_fcos_nashead_r50_caffe_fpn_gn-head_4x4_1x_coco"]


@pytest.fixture(scope="module", params=CONFIGS)
def loaded(request):
    """(model, fixture), built once per config for both tests."""
    fixture, model = load_fixture(FIXTURES / request.param)
    return model, fixture


def test_detections_match_mmdetection(loaded):
    model, fixture = loaded
    reference = fixture.detections()
    assert len(reference) == 100 and match_rate(reference, fixture_detections(model, fixture)) >= 0.99


def test_losses_match_mmdetection(loaded):
    model, fixture = loaded
    mismatches = loss_mismatches(model, fixture)
    assert mismatches == {}, f"(ours, mmdet's) per loss: {mismatches}"
