"""The Res2Net rows of Cascade R-CNN, Cascade Mask R-CNN and HTC: Res2Net-101 (26w x 4s) on the 20e schedule."""

import pytest

from det_common.backbones import Res2Net
from detcore.config import load_config
from detcore.registry import build


@pytest.mark.parametrize("name, masks, semantic", [
    ("cascade_rcnn_r2_101_fpn_20e_coco", False, False),
    ("cascade_mask_rcnn_r2_101_fpn_20e_coco", True, False),
    ("htc_r2_101_fpn_20e_coco", True, True),
])
def test_res2net_cascade_configs_build(name, masks, semantic):
    cfg = load_config(name)
    assert cfg["runner"]["max_epochs"] == 20 and cfg["lr_config"]["steps"] == [16, 19]
    model = build("detectors", cfg["model"])
    assert isinstance(model.backbone, Res2Net) and len(model.backbone.layer3) == 23
    assert model.backbone.layer4[0].width == 208
    assert model.roi_head.num_stages == 3 and model.roi_head.with_mask == masks
    assert hasattr(model.roi_head, "semantic_head") == semantic
