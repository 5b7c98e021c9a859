"""Every shipped config loads by name and builds; Fast R-CNN trains and predicts from given proposals."""

from __future__ import annotations

import math

import pytest
import torch

from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Instances
from ts_helpers import synthetic_batch

CONFIGS = {
    "rpn_r50_fpn_1x_coco": "RPN",
    "faster_rcnn_r50_fpn_1x_coco": "FasterRCNN",
    "mask_rcnn_r50_fpn_1x_coco": "MaskRCNN",
    "faster_rcnn_resnet50_fpn_torchvision": "FasterRCNN",
    "faster_rcnn_r18_fpn_shapes": "FasterRCNN",
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_shipped_config_builds(name):
    cfg = load_config(name)
    model = build("detectors", cfg["model"])
    assert type(model).__name__ == CONFIGS[name]
    assert cfg["train_dataloader"]["dataset"]["type"] == "CocoDataset"


def test_fast_rcnn_uses_the_batch_proposals():
    torch.manual_seed(0)
    cfg = load_config("faster_rcnn_r18_fpn_shapes")["model"]
    del cfg["rpn_head"]
    cfg["type"] = "FastRCNN"
    model = build("detectors", cfg)
    generator = torch.Generator().manual_seed(3)
    batch = synthetic_batch(generator, num_images=2, size=(128, 160))
    proposals = []
    for gt in batch.gt:
        jittered = gt.boxes + torch.randn(gt.boxes.shape, generator=generator) * 3
        xy = torch.rand(40, 2, generator=generator) * 100
        background = torch.cat([xy, xy + 20 + torch.rand(40, 2, generator=generator) * 40], dim=1)
        boxes = torch.cat([jittered, background])
        proposals.append(Instances((128, 160), boxes=boxes, scores=torch.ones(len(boxes))))
    batch.proposals = proposals
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    first = last = None
    for _ in range(8):
        losses = model.loss(batch)
        assert set(losses) == {"loss_cls", "loss_bbox", "acc"}
        total = losses["loss_cls"] + losses["loss_bbox"]
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        first = float(total.detach()) if first is None else first
        last = float(total.detach())
    assert math.isfinite(last) and last < first
    model.eval()
    with torch.no_grad():
        results = model.predict(batch)
    assert len(results) == 2 and all(r.image_size == (128, 160) for r in results)
    batch.proposals = None
    with pytest.raises(ValueError, match="precomputed proposals"):
        model.predict(batch)
