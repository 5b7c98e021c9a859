"""torchvision maskrcnn_resnet50_fpn -> convert -> our twin config gives the same detections and masks."""

from __future__ import annotations

import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from det_common.parity import mask_ious
from det_two_stage.converters.torchvision import convert_maskrcnn_resnet50_fpn
from detcore.structures import Batch
from det_common.bbox import bbox_overlaps as box_iou
from ts_helpers import metas_for, torchvision_twins

HEIGHT, WIDTH = 320, 448


@torch.no_grad()
def test_detections_and_masks_match():
    tv, ours, images = torchvision_twins(maskrcnn_resnet50_fpn, convert_maskrcnn_resnet50_fpn,
                                         "mask_rcnn_r50_fpn_torchvision", 1, HEIGHT, WIDTH)

    expected = tv(list(images))[0]
    mine = ours.predict(Batch(images=images, metas=metas_for(images)))[0]
    assert len(expected["boxes"]) >= 30 and len(mine) == len(expected["boxes"])
    tv_masks = expected["masks"][:, 0] >= 0.5
    iou = box_iou(expected["boxes"], mine.boxes)
    mask_iou = mask_ious(tv_masks, mine.masks)
    free = torch.ones(len(mine), dtype=torch.bool)
    matched = 0
    for i in range(len(expected["boxes"])):
        ok = free & (mine.labels + 1 == expected["labels"][i]) & (iou[i] >= 0.99)
        ok &= ((mine.scores - expected["scores"][i]).abs() <= 1e-3) & (mask_iou[i] >= 0.95)
        if ok.any():
            free[int(torch.nonzero(ok)[0])] = False
            matched += 1
    assert matched >= 0.99 * len(expected["boxes"])
