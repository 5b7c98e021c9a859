"""CenterNet, CornerNet and CentripetalNet against MMDetection 3.3: each fixture's seeded weights through our
config of the same name give MMDetection's detections on its 512 x 640 image (the test pipeline pads it around
its centre: CenterNet to (size | 31) + 1 = 544 x 672, the corner detectors to size | 127 = 639 x 767, and the
heads map boxes back) and its losses on the unpadded image, as the fixtures computed them. CentripetalNet's
seeded centripetal shifts pair no corners: its empty output is reproduced and its losses carry the check.
Hourglass-104 is heavy on a CPU: each model is built once and each pass runs once."""

import copy

import pytest

from det_common.parity import fixture_detections, load_fixture, loss_mismatches, match_rate
from kp_helpers import FIXTURES, without_canvas

# config -> number of MMDetection's detections on the fixture image
CONFIGS = {
    "centernet_resnet18_140e_coco": 100,
    "cornernet_hourglass104_mstest_8x6_210e_coco": 21,
    "centripetalnet_hourglass104_mstest_16x6_210e_coco": 0,
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def loaded(request):
    """(model, fixture), built once per config for both tests."""
    fixture, model = load_fixture(FIXTURES / request.param)
    return model, fixture


def test_detections_match_mmdetection(loaded):
    model, fixture = loaded
    reference = fixture.detections()
    ours = fixture_detections(model, fixture)
    assert len(reference) == CONFIGS[fixture.name] == len(ours) and match_rate(reference, ours) >= 0.99


def test_losses_match_mmdetection(loaded):
    model, fixture = loaded
    mismatches = loss_mismatches(without_canvas(copy.copy(model)), fixture)
    assert mismatches == {}, f"(ours, mmdet's) per loss: {mismatches}"
