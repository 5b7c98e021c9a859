"""The fast inference path (``init_detector``'s default) on FCOS's MMDetection fixture."""

from pathlib import Path

from det_common.testing import assert_fast_path_matches


def test_fast_path_gives_the_plain_models_outputs():
    assert_fast_path_matches(Path(__file__).resolve().parents[3] / "tests/fixtures/mmdet-refs/fcos_r50_caffe_fpn_gn-head_1x_coco")
