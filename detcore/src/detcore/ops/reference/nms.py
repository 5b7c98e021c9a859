"""Reference non-maximum suppression: hard NMS (torchvision), class-wise NMS and Soft-NMS."""

from __future__ import annotations

import math

import torch
import torchvision
from torch import Tensor

from detcore.ops.checks import check_boxes_scores, check_choice, check_tensor

SOFT_NMS_METHODS = ("linear", "gaussian", "naive")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of the boxes kept by greedy NMS, by decreasing score; a box is suppressed when IoU > threshold."""
    boxes, scores = check_boxes_scores("nms", boxes, scores)
    return torchvision.ops.nms(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS run independently for each value of `idxs` (e.g. class id); kept indices by decreasing score."""
    boxes, scores = check_boxes_scores("batched_nms", boxes, scores)
    idxs = check_tensor("batched_nms", "idxs", idxs, 1, "[N] int64")
    if idxs.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"batched_nms: `idxs` must have one entry per box: {boxes.shape[0]} boxes, {idxs.shape[0]} idxs"
        )
    if idxs.is_floating_point() or idxs.dtype == torch.bool:
        raise TypeError(f"batched_nms: `idxs` must be an integer tensor, got dtype {idxs.dtype}")
    return torchvision.ops.batched_nms(boxes, scores, idxs, float(iou_threshold))


def _iou_one_to_many(box: Tensor, boxes: Tensor) -> Tensor:
    """IoU of one xyxy box [4] with every box of [N, 4] (areas (x2-x1)*(y2-y1), no +1)."""
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(boxes.dtype).tiny), torch.zeros_like(inter))


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al. 2017). Returns dets [K,5] (x1,y1,x2,y2,rescored score) in selection order and indices [K].

    Definition: boxes with score < min_score are dropped. Repeatedly select the live box with the highest current
    score (ties: lowest index), keep it, then rescore every other live box by its IoU with the selected one:
    linear: s *= (1 - iou) if iou > iou_threshold; gaussian: s *= exp(-iou^2 / sigma);
    naive (hard NMS): s = 0 if iou > iou_threshold; boxes whose score falls below min_score are dropped.
    Differentiable w.r.t. boxes and scores (the selection order itself is not).
    """
    boxes, scores = check_boxes_scores("soft_nms", boxes, scores)
    check_choice("soft_nms", "method", method, SOFT_NMS_METHODS)
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"soft_nms: `sigma` must be > 0 for the gaussian method, got {sigma}")
    if not math.isfinite(min_score):
        raise ValueError(f"soft_nms: `min_score` must be a finite number, got {min_score}")

    current = scores
    alive = scores >= min_score
    order: list[Tensor] = []
    kept_scores: list[Tensor] = []
    neg_inf = torch.full_like(scores, float("-inf"))
    while bool(alive.any()):
        i = torch.argmax(torch.where(alive, current.detach(), neg_inf))
        order.append(i)
        kept_scores.append(current[i])
        alive = alive.clone()
        alive[i] = False
        iou = _iou_one_to_many(boxes[i], boxes)
        if method == "linear":
            weight = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
        elif method == "gaussian":
            weight = torch.exp(-(iou * iou) / sigma)
        else:
            weight = torch.where(iou > iou_threshold, torch.zeros_like(iou), torch.ones_like(iou))
        current = torch.where(alive, current * weight, current)
        alive = alive & (current.detach() >= min_score)

    if not order:
        return boxes.new_zeros((0, 5)), torch.zeros(0, dtype=torch.int64, device=boxes.device)
    inds = torch.stack(order)
    dets = torch.cat([boxes[inds], torch.stack(kept_scores)[:, None].to(boxes.dtype)], dim=1)
    return dets, inds
