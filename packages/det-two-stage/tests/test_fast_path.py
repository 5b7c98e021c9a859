"""The fast inference path (``init_detector``'s default) on Mask R-CNN's MMDetection fixture."""

from pathlib import Path

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
