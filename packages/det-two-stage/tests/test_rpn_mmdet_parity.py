"""RPN against MMDetection 3.3: the fixture's seeded weights (MMDetection 3 names the RPN detector's head
``bbox_head``) through our config of the same name give MMDetection's proposals; MMDetection 2's layout
(``rpn_head``) loads into the same detector. Its losses sample anchors at random, so they are not compared."""

from pathlib import Path

import pytest
import torch

from det_common.parity import fixture_detections, load_fixture, match_rate
from detcore.engine.checkpoint import compare_state

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


@pytest.fixture(scope="module")
def loaded():
    return load_fixture(FIXTURES / "rpn_r50_fpn_1x_coco")


def test_mmdetection_2_and_3_layouts_load(loaded):
    fixture, model = loaded
    mmdet3 = fixture.state_dict()
    assert any(k.startswith("bbox_head.") for k in mmdet3) and not any(k.startswith("rpn_head.") for k in mmdet3)
    assert set(model.state_dict()) == {k.replace("bbox_head.", "rpn_head.", 1) for k in mmdet3}
    mmdet2 = {k.replace("bbox_head.", "rpn_head.", 1): v for k, v in mmdet3.items()}
    with torch.no_grad():
        model.rpn_head.rpn_cls.weight.zero_()
    model.load_state_dict(mmdet2, strict=True)
    torch.testing.assert_close(model.rpn_head.rpn_cls.weight, mmdet3["bbox_head.rpn_cls.weight"])
    for layout in (mmdet2, mmdet3):  # what init_detector, test and infer check before loading
        report, usable = compare_state(model, layout)
        assert report.fits and len(usable) == len(mmdet3)


def test_proposals_match_mmdetection(loaded):
    fixture, model = loaded
    reference = fixture.detections()
    assert len(reference) == 1000
    assert match_rate(reference, fixture_detections(model, fixture)) >= 0.99
