"""RetinaNet converted from torchvision reproduces torchvision's head outputs and detections exactly."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from det_single_stage.converters.torchvision_retinanet import convert
from detcore.config import load_config
from detcore.registry import build
from det_common.testing import batch_from_transform, match_detections, smooth_images

MIN_SIZE, MAX_SIZE = 384, 512
ORIGINAL_SIZES = [(300, 400), (360, 400)]  # both resize into a 384 x 512 batch (a multiple of 128)


@torch.no_grad()
def randomize_torchvision(model: nn.Module, images: list[torch.Tensor]) -> None:
    """Seeded weights that give confident, distinct detections: BN statistics calibrated on the
    images, unit-gain head towers and classification biases spread over scores 0.05..0.95."""
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5, generator=gen)
            module.bias.uniform_(-0.2, 0.2, generator=gen)
            module.momentum = None  # cumulative average over the calibration pass
            module.reset_running_stats()
    for conv in model.head.modules():
        if isinstance(conv, nn.Conv2d):
            fan_in = conv.in_channels * 9
            conv.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
            conv.bias.uniform_(-0.1, 0.1, generator=gen)
    cls_logits = model.head.classification_head.cls_logits
    cls_logits.weight.mul_(0.1)
    cls_logits.bias.uniform_(-3.0, 3.0, generator=gen)  # sigmoid: 0.05 .. 0.95
    model.head.regression_head.bbox_reg.weight.mul_(0.1)
    model.train()
    model.backbone(model.transform(images)[0].tensors)
    model.eval()


def build_twins() -> tuple[nn.Module, nn.Module, list[torch.Tensor]]:
    torch.manual_seed(0)
    images = smooth_images(ORIGINAL_SIZES, 1)
    tv = torchvision.models.detection.retinanet_resnet50_fpn(
        weights=None, weights_backbone=None, min_size=MIN_SIZE, max_size=MAX_SIZE
    )
    randomize_torchvision(tv, images)
    converted, unplaced = convert(tv.state_dict())
    assert unplaced == []
    cfg = load_config("retinanet_resnet50_fpn_torchvision")
    ours = build("detectors", cfg["model"])
    result = ours.load_state_dict(converted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    return tv, ours.eval(), images


@torch.no_grad()
def test_retinanet_matches_torchvision() -> None:
    tv, ours, images = build_twins()
    batch = batch_from_transform(tv, images)

    captured = {}
    tv.head.register_forward_hook(lambda module, args, out: captured.update(out))
    tv_dets = tv(images)
    cls_scores, bbox_preds = ours.forward_tensor(batch.images)

    start = 0
    for cls_score, bbox_pred in zip(cls_scores, bbox_preds):
        n, _, h, w = cls_score.shape
        count = h * w * 9
        ours_cls = cls_score.permute(0, 2, 3, 1).reshape(n, -1, 91)
        ours_reg = bbox_pred.permute(0, 2, 3, 1).reshape(n, -1, 4)
        torch.testing.assert_close(ours_cls, captured["cls_logits"][:, start:start + count], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(ours_reg, captured["bbox_regression"][:, start:start + count], atol=1e-4, rtol=1e-4)
        start += count
    assert start == captured["cls_logits"].shape[1]

    our_dets = ours.predict(batch)
    for ref, mine in zip(tv_dets, our_dets):
        assert len(ref["boxes"]) >= 100  # confident and distinct, so the comparison means something
        assert len(ref["scores"].unique()) > 0.9 * len(ref["scores"])
        assert match_detections(ref, mine) >= 0.99
        assert abs(len(mine) - len(ref["boxes"])) <= 0.01 * len(ref["boxes"]) + 1
