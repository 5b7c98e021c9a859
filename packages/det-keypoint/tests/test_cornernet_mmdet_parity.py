"""CornerNet Hourglass-104 against MMDetection 3.3: the fixture's seeded weights through our config of the same
name give MMDetection's detections on its 512 x 640 image (padded around its centre to 639 x 767, corners
paired by embeddings, soft-NMS) and its heatmap, offset, pull and push losses on both stacks. Hourglass-104 is
heavy on a CPU: the model is built once and each pass runs once."""

import copy

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate
from kp_helpers import FIXTURES, without_canvas


@pytest.fixture(scope="module")
def loaded():
    fixture, model = load_fixture(FIXTURES / "cornernet_hourglass104_mstest_8x6_210e_coco")
    return model, fixture


def test_cornernet_detections_match_mmdetection(loaded):
    model, fixture = loaded
    reference = fixture.detections()
    ours = fixture_detections(model, fixture)
    assert len(reference) == 21 and len(ours) == len(reference) and match_rate(reference, ours) >= 0.99


def test_cornernet_losses_match_mmdetection(loaded):
    model, fixture = loaded
    mismatches = loss_mismatches(without_canvas(copy.copy(model)), fixture)
    assert mismatches == {}, f"(ours, mmdet's) per loss: {mismatches}"
