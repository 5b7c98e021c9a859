"""The fast inference path (``init_detector``'s default) on Mask R-CNN's MMDetection fixture."""

from pathlib import Path

from det_common.testing import assert_fast_path_matches


def test_fast_path_gives_the_plain_models_outputs():
    assert_fast_path_matches(Path(__file__).resolve().parents[3] / "tests/fixtures/mmdet-refs/mask_rcnn_r50_fpn_1x_coco", with_masks=True)
