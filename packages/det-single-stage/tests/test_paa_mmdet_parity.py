"""PAA against MMDetection 3.3: the fixture's seeded weights through ``paa_r50_fpn_1x_coco`` give MMDetection's
detections (IoU-fused scores, NMS, score voting; >= 99% matched). The fixture's losses are not deterministic
(MMDetection's GMM split), so they are not compared."""

import json
from pathlib import Path

from det_common.parity import fixture_detections, load_fixture, match_rate

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "mmdet-refs"


def test_detections_match_mmdetection():
    fixture, model = load_fixture(FIXTURES / "paa_r50_fpn_1x_coco")
    assert not json.loads((fixture.dir / "losses.json").read_text())["deterministic"]
    assert match_rate(fixture.detections(), fixture_detections(model, fixture)) >= 0.99
