"""CenterNet's parts: Gaussian targets, the test-time canvas and its undoing, the DCNv2 variant, training."""

import math

import pytest
import torch

from det_common.bbox import bbox_overlaps
from det_common.testing import synthetic_batch, train_steps
from det_keypoint.heatmaps import draw_gaussian, gaussian_radius, local_maximum, topk_peaks
from det_keypoint.transforms.center_crop_pad import RandomCenterCropPad
from detcore.config import load_config
from detcore.errors import ConfigError
from detcore.registry import build
from detcore.structures import Instances
from kp_helpers import build_shapes_model


@pytest.mark.parametrize("h, w", [(20.0, 30.0), (8.0, 64.0), (100.0, 100.0)])
def test_gaussian_radius_keeps_the_overlap(h, w):
    """Both corners moved by the radius (inward, outward, or one each way) keep IoU >= min_overlap."""
    r = gaussian_radius(h, w, min_overlap=0.7)
    box = torch.tensor([[0.0, 0.0, w, h]])
    moved = torch.tensor([[r, r, w - r, h - r], [-r, -r, w + r, h + r], [r, r, w + r, h + r]])
    assert 0 < r < min(h, w) and (bbox_overlaps(box, moved) >= 0.7 - 1e-6).all()


def test_draw_gaussian_peaks_at_the_center_and_keeps_the_max():
    heat = torch.zeros(9, 11)
    draw_gaussian(heat, (2, 3), radius=2)
    draw_gaussian(heat, (3, 3), radius=1, peak=0.5)
    assert heat[3, 2] == 1 and heat.eq(1).sum() == 1 and heat[3, 3] < 1 and heat[0, 10] == 0
    peaks = topk_peaks(local_maximum(heat[None, None]), k=1)
    assert (peaks[3].item(), peaks[4].item()) == (3.0, 2.0)


def test_center_pad_maps_back():
    """Test mode: (h | 31) + 1 canvas, image centred; the border recorded is where it went."""
    image = torch.rand(3, 50, 70) * 255
    pad = RandomCenterCropPad(mean=[0, 0, 0], std=[1, 1, 1], test_mode=True, test_pad_mode=["logical_or", 31],
                              test_pad_add_pix=1)
    out = pad({"img": image, "bbox_fields": []})
    top, bottom, left, right = (int(v) for v in out["border"])
    assert out["img"].shape[-2:] == (64, 96) and (top, left) == (7, 13) and (bottom - top, right - left) == (50, 70)
    assert torch.equal(out["img"][:, top:bottom, left:right], image) and out["img"][:, :top].eq(0).all()
    with pytest.raises(ConfigError, match="crop_size"):
        RandomCenterCropPad(mean=[0, 0, 0], crop_size=[64, 64], test_mode=True)


def test_center_crop_pad_training_keeps_boxes_with_pixels():
    torch.manual_seed(0)
    image = torch.zeros(3, 200, 300)
    image[:, 50:100, 60:160] = 255
    from detcore.data.transforms.fields import make_boxes

    results = {"img": image, "gt_bboxes": make_boxes([[60, 50, 160, 100]], (200, 300)),
               "gt_labels": torch.tensor([1]), "bbox_fields": ["gt_bboxes"]}
    out = RandomCenterCropPad(crop_size=[128, 128], ratios=[1.0], border=16, mean=[0, 0, 0])(results)
    assert out["img"].shape[-2:] == (128, 128) and len(out["gt_bboxes"]) == len(out["gt_labels"]) == 1
    x1, y1, x2, y2 = (int(round(float(v))) for v in out["gt_bboxes"][0])
    assert out["img"][0, (y1 + y2) // 2, (x1 + x2) // 2] == 255


def test_dcnv2_config_differs_only_by_the_neck_offsets():
    plain = build("detectors", load_config("centernet_resnet18_140e_coco")["model"]).state_dict()
    dcn = build("detectors", load_config("centernet_resnet18_dcnv2_140e_coco")["model"]).state_dict()
    extra = set(dcn) - set(plain)
    assert set(plain) <= set(dcn) and extra and all(".conv.conv_offset." in k or k.endswith("conv.bias") for k in extra)


def test_centernet_loss_falls_and_predicts():
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(64, 96), num_classes=3)
    model = build_shapes_model("centernet_r18_shapes")
    history = train_steps(model, batch, steps=5, lr=0.01)
    assert set(history[0]) >= {"loss_center_heatmap", "loss_wh", "loss_offset"}
    assert history[-1]["total"] < 0.8 * history[0]["total"], [h["total"] for h in history]
    model.eval()
    with torch.no_grad():
        found = model.predict(batch)
    assert all(len(d) == 100 and d.scores.diff().le(0).all() for d in found)


def test_centernet_image_without_objects_trains():
    batch = synthetic_batch(torch.Generator().manual_seed(1), num_images=2, size=(64, 64), num_classes=3)
    batch.gt = [Instances((64, 64), boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))] * 2
    model = build_shapes_model("centernet_r18_shapes")
    losses = model.loss(batch)
    assert losses["loss_wh"].item() == 0 and losses["loss_offset"].item() == 0
    assert math.isfinite(losses["loss_center_heatmap"].item()) and losses["loss_center_heatmap"].item() > 0
