"""Faster R-CNN Res2Net-101 against MMDetection 3.3: the shared fixture's seeded weights through our config of the
same name.

The fixture's float32 detections hold near-ties that the CPU kernels decide: MMDetection itself, re-run with 1
thread instead of the fixture's 2, matches only 88 / 100 of them, and so do we
(``tests/fixtures/mmdet-refs-tamed/README.md``). So the float32 check runs at the fixture's 2 threads, and the
float64 check, where thread counts do not matter, compares with MMDetection's float64 run on the same weights
(``tests/fixtures/mmdet-refs-fp64``).
"""

from pathlib import Path

import pytest
import torch

from det_common.parity import MMDetFixture, fixture_detections, float64_detections, load_fixture, match_rate

ROOT = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
NAME = "faster_rcnn_r2_101_fpn_2x_coco"


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def test_res2net_faster_rcnn_gives_mmdetections_float32_detections_at_its_thread_count(two_threads):
    fixture = MMDetFixture(ROOT / "mmdet-refs" / NAME)
    assert match_rate(fixture.detections(), fixture_detections(NAME, fixture)) >= 0.99


def test_res2net_faster_rcnn_gives_mmdetections_float64_detections():
    fixture, model = load_fixture(ROOT / "mmdet-refs-fp64" / NAME)
    reference = fixture.detections()
    assert len(reference) == 100
    # 100 / 100 when written; many boxes are 0.1-0.5 px wide and 500 px tall, so the 0.03 px and 1e-5 score
    # differences left by the steps both sides keep in float32 (mmcv's NMS inputs among them) stay near IoU 0.995
    assert match_rate(reference, float64_detections(model, fixture)) >= 0.99


@pytest.mark.parametrize("name", [NAME, "mask_rcnn_r2_101_fpn_2x_coco"])
def test_res2net_configs_build_res2net_101_on_the_2x_schedule(name):
    from det_common.backbones import Res2Net
    from detcore.config import load_config
    from detcore.registry import build

    cfg = load_config(name)
    assert cfg["runner"]["max_epochs"] == 24 and cfg["lr_config"]["steps"] == [16, 22]
    model = build("detectors", cfg["model"])
    assert isinstance(model.backbone, Res2Net) and len(model.backbone.layer3) == 23
    assert model.backbone.scales == 4 and model.backbone.layer1[0].width == 26
    assert model.roi_head.with_mask == name.startswith("mask")
