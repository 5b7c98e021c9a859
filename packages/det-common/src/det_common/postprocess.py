"""Class-aware NMS post-processing configured by a table: ``{"type": "nms" | "soft_nms", "iou_threshold": ...}``."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from detcore import ops
from detcore.structures import Instances

NMS_TYPES = ("nms", "soft_nms")


def batched_nms_with_cfg(
    boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: Mapping[str, Any], class_agnostic: bool = False
) -> tuple[Tensor, Tensor]:
    """NMS within each group of ``idxs`` as ``nms_cfg`` says; returns dets (K, 5) and kept indices (K,),
    by decreasing (re-scored, for soft_nms) score.

    ``nms_cfg``: ``type`` "nms" (``iou_threshold``) or "soft_nms" (``iou_threshold``, ``sigma``,
    ``min_score``, ``method``); optional ``max_num`` keeps only the best results overall.
    ``class_agnostic`` ignores ``idxs``.
    """
    cfg = dict(nms_cfg)
    nms_type = cfg.pop("type", "nms")
    if nms_type not in NMS_TYPES:
        raise ValueError(f"batched_nms_with_cfg: nms type must be one of {NMS_TYPES}, got {nms_type!r}")
    max_num = int(cfg.pop("max_num", -1))
    if class_agnostic:
        idxs = torch.zeros_like(idxs)
    if boxes.numel() == 0:
        return boxes.new_zeros((0, 5)), torch.zeros(0, dtype=torch.long, device=boxes.device)
    if nms_type == "nms":
        unknown = set(cfg) - {"iou_threshold"}
        if unknown:
            raise ValueError(f"batched_nms_with_cfg: unknown nms options {sorted(unknown)}")
        keep = ops.batched_nms(boxes, scores, idxs, float(cfg.get("iou_threshold", 0.5)))
        kept_scores = scores[keep]
    else:
        unknown = set(cfg) - {"iou_threshold", "sigma", "min_score", "method"}
        if unknown:
            raise ValueError(f"batched_nms_with_cfg: unknown soft_nms options {sorted(unknown)}")
        keeps, rescored = [], []
        for group in torch.unique(idxs):
            members = torch.nonzero(idxs == group).flatten()
            dets, inds = ops.soft_nms(boxes[members], scores[members], **cfg)
            keeps.append(members[inds])
            rescored.append(dets[:, 4])
        keep = torch.cat(keeps)
        kept_scores = torch.cat(rescored).to(scores.dtype)
        order = torch.argsort(kept_scores, descending=True, stable=True)
        keep, kept_scores = keep[order], kept_scores[order]
    if max_num > 0:
        keep, kept_scores = keep[:max_num], kept_scores[:max_num]
    dets = torch.cat([boxes[keep], kept_scores[:, None].to(boxes.dtype)], dim=1)
    return dets, keep


def multiclass_nms(
    boxes: Tensor,
    scores: Tensor,
    score_thr: float,
    nms_cfg: Mapping[str, Any] | None = None,
    max_per_img: int = -1,
    class_agnostic: bool = False,
    score_factors: Tensor | None = None,
    image_size: tuple[int, int] | None = None,
    return_inds: bool = False,
) -> Instances | tuple[Instances, Tensor]:
    """Per-class NMS of N candidates: boxes (N, 4) shared by all classes or (N, C, 4), scores (N, C)
    (no background column). Returns ``Instances(boxes, scores, labels)`` by decreasing score.

    Pairs with score > ``score_thr`` are kept, then multiplied by ``score_factors`` (N,) if given
    (e.g. FCOS centerness), then NMS; at most ``max_per_img`` results (-1: all). With
    ``return_inds``, also returns the candidate row (0..N-1) of every result.
    """
    if scores.dim() != 2:
        raise ValueError(f"multiclass_nms: scores must be (N, C), got {tuple(scores.shape)}")
    num, num_classes = scores.shape
    if boxes.dim() == 2 and boxes.shape == (num, 4):
        boxes = boxes[:, None, :].expand(num, num_classes, 4)
    elif boxes.shape != (num, num_classes, 4):
        raise ValueError(
            f"multiclass_nms: boxes must be (N, 4) or (N, C, 4) for scores {tuple(scores.shape)}, got {tuple(boxes.shape)}"
        )
    nms_cfg = {"type": "nms", "iou_threshold": 0.5} if nms_cfg is None else nms_cfg
    flat_boxes = boxes.reshape(-1, 4)
    flat_scores = scores.reshape(-1)
    labels = torch.arange(num_classes, device=scores.device).repeat(num)
    rows = torch.arange(num, device=scores.device).repeat_interleave(num_classes)
    valid = flat_scores > score_thr
    if score_factors is not None:
        flat_scores = flat_scores * score_factors[:, None].expand(num, num_classes).reshape(-1)
    flat_boxes, flat_scores, labels, rows = flat_boxes[valid], flat_scores[valid], labels[valid], rows[valid]
    dets, keep = batched_nms_with_cfg(flat_boxes, flat_scores, labels, nms_cfg, class_agnostic)
    if max_per_img > 0:
        dets, keep = dets[:max_per_img], keep[:max_per_img]
    result = Instances(image_size, boxes=dets[:, :4], scores=dets[:, 4], labels=labels[keep])
    if return_inds:
        return result, rows[keep]
    return result
