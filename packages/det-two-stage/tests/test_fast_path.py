"""The fast inference path (``init_detector``'s default) on Mask R-CNN's MMDetection fixture."""

from pathlib import Path

import torch

from det_common.testing import assert_fast_path_matches


def test_fast_path_gives_the_plain_models_outputs():
    assert_fast_path_matches(Path(__file__).resolve().parents[3] / "tests/fixtures/mmdet-refs/mask_rcnn_r50_fpn_1x_coco", with_masks=True)


def test_bf16_mask_rcnn_keeps_rois_and_post_processing_in_fp32():
    """precision="bf16": RoI pooling gets fp32 RoIs, detections and masks come back in fp32 / bool."""
    import numpy as np
    import torch

    from detcore.apis import inference_detector, init_detector
    from detcore.config import load_config

    cfg = load_config("mask_rcnn_r50_fpn_1x_coco")
    for step in cfg["test_pipeline"]:
        if step.get("type") == "Resize":
            step["scale"] = [96, 64]
    cfg["model"]["backbone"]["depth"] = 18  # bf16 is emulated (slow) on CPUs without AVX-512 BF16
    cfg["model"]["neck"]["in_channels"] = [64, 128, 256, 512]
    cfg["model"]["test_cfg"]["rcnn"]["score_thr"] = 0.0  # random weights: keep every box
    torch.manual_seed(0)
    model = init_detector(cfg, precision="bf16")
    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    dets = inference_detector(model, image)
    assert len(dets) > 0 and dets.boxes.dtype == dets.scores.dtype == torch.float32
    assert dets.masks.dtype == torch.bool and dets.masks.shape[-2:] == (60, 90)


def test_fast_path_gives_the_plain_models_detections_with_res2net():
    """Res2Net's blocks fold conv1/bn1 and conv3/bn3 (the chained 3x3 groups keep their norms). Compared in
    float64, folding included: this fixture's float32 detections are decided by rounding (MMDetection's own
    1-thread run keeps 88 of 100; folding in float32 alone moves 3 of 100 even in a float64 run)."""
    import copy

    from det_common.parity import float64_detections, load_fixture, match_rate

    fixture, model = load_fixture(Path(__file__).resolve().parents[3] / "tests/fixtures/mmdet-refs/faster_rcnn_r2_101_fpn_2x_coco")
    fast = copy.deepcopy(model.double()).optimize_for_inference()  # folded in float64 too
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.backbone.layer2[0].children())  # bn1, bn3 folded
    assert match_rate(float64_detections(model, fixture), float64_detections(fast, fixture)) >= 0.99
