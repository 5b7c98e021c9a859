"""Helpers for checking a detcore detector against its torchvision twin (used by the families' parity tests)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detcore.structures import Batch, ImageMeta, Instances
from det_common.bbox import bbox_overlaps


def smooth_images(sizes: Sequence[tuple[int, int]], seed: int) -> list[Tensor]:
    """Images in [0, 1] with blobs at several scales, so detections differ across locations."""
    gen = torch.Generator().manual_seed(seed)
    images = []
    for h, w in sizes:
        image = torch.zeros(3, h, w)
        for cells in (4, 12, 40):
            coarse = torch.rand(1, 3, cells, cells, generator=gen)
            image += nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[0]
        images.append(image / 3)
    return images


def batch_from_transform(tv_model: nn.Module, images: list[Tensor]) -> Batch:
    """torchvision's resized, normalised, padded batch with the metadata a detcore model needs."""
    image_list, _ = tv_model.transform(images)
    metas = []
    for image, (h, w) in zip(images, image_list.image_sizes):
        oh, ow = image.shape[-2:]
        metas.append(ImageMeta(ori_shape=(oh, ow), img_shape=(h, w), pad_shape=tuple(image_list.tensors.shape[-2:]),
                               scale_factor=(w / ow, h / oh)))
    return Batch(images=image_list.tensors, metas=metas)


def match_detections(ref: dict[str, Tensor], ours: Instances, iou_thr: float = 0.99, score_tol: float = 1e-3) -> float:
    """Fraction of reference detections matched one to one by ours: same label, |score diff| <= score_tol and
    IoU >= iou_thr (or, for boxes clipped to zero area at the border, corners within 0.01 pixel)."""
    if len(ref["boxes"]) == 0:
        return 1.0
    iou = bbox_overlaps(ref["boxes"], ours.boxes)
    corners_close = (ref["boxes"][:, None] - ours.boxes[None]).abs().amax(dim=-1) <= 0.01
    same = (ref["labels"][:, None] == ours.labels[None]) & ((ref["scores"][:, None] - ours.scores[None]).abs() <= score_tol)
    ok = ((iou >= iou_thr) | corners_close) & same
    used = torch.zeros(len(ours), dtype=torch.bool)
    matched = 0
    for i in range(len(ref["boxes"])):
        candidates = (ok[i] & ~used).nonzero().flatten()
        if len(candidates):
            used[candidates[iou[i, candidates].argmax()]] = True
            matched += 1
    return matched / len(ref["boxes"])
