"""Cascade RPN + Faster R-CNN against MMDetection 3.3: the fixture's seeded weights loaded strictly into our
config of the same name give its detections, and the first stage's (deterministic, region-assigned) loss."""

from pathlib import Path

import pytest

from det_common.parity import MMDetFixture, fixture_detections, fixture_losses, load_fixture_model, match_rate, summed_losses

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"
NAME = "crpn_faster_rcnn_r50_caffe_fpn_1x_coco"


@pytest.fixture(scope="module")
def loaded():
    fixture = MMDetFixture(FIXTURES / NAME)
    return fixture, load_fixture_model(NAME, fixture)


def test_crpn_faster_rcnn_gives_mmdetection_detections(loaded):
    fixture, model = loaded
    assert match_rate(fixture.detections(), fixture_detections(model, fixture)) >= 0.99


def test_crpn_first_stage_loss_equals_mmdetection(loaded):
    """Stage 0 assigns by regions, without sampling, so its loss is deterministic (the fixture's other losses
    sample at random and are not compared)."""
    fixture, model = loaded
    reference = summed_losses(fixture.losses()[0])
    ours = fixture_losses(model, fixture)
    assert ours["s0.loss_rpn_reg"] == pytest.approx(reference["s0.loss_rpn_reg"], rel=1e-4)
    assert {"s1.loss_rpn_cls", "s1.loss_rpn_reg", "loss_cls", "loss_bbox"} <= set(ours)
