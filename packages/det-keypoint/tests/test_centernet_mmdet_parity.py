"""CenterNet ResNet-18 against MMDetection 3.3: the fixture's seeded weights through our config of the same name
give MMDetection's detections on its 512 x 640 image (padded around its centre to 544 x 672 by the test
pipeline, boxes mapped back) and its three losses on the unpadded image."""

import copy

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate
from kp_helpers import FIXTURES, without_canvas


@pytest.fixture(scope="module")
def loaded():
    fixture, model = load_fixture(FIXTURES / "centernet_resnet18_140e_coco")
    return model, fixture


def test_centernet_detections_match_mmdetection(loaded):
    model, fixture = loaded
    reference = fixture.detections()
    ours = fixture_detections(model, fixture)
    assert len(reference) == 100 and match_rate(reference, ours) >= 0.99


def test_centernet_losses_match_mmdetection(loaded):
    model, fixture = loaded
    mismatches = loss_mismatches(without_canvas(copy.copy(model)), fixture)
    assert mismatches == {}, f"(ours, mmdet's) per loss: {mismatches}"
