"""The family against MMDetection 3.3: each fixture's seeded weights through our config of the same name give its
detections (>= 99% matched) and its Hungarian-matched losses at every decoder layer or Sparse R-CNN stage (within
1e-4 relative; all of them are deterministic)."""

from pathlib import Path

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"
CONFIGS = ["detr_r50_8x2_150e_coco", "deformable_detr_r50_16x2_50e_coco", "deformable_detr_refine_r50_16x2_50e_coco",
           "deformable_detr_twostage_refine_r50_16x2_50e_coco", "sparse_rcnn_r50_fpn_1x_coco"]


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
