"""Post-processing shared by dense heads, the RPN and RoI heads: candidate selection, mapping boxes back,
and NMS configured by a table (``{"type": "nms" | "soft_nms", "iou_threshold": ...}``).

The path follows MMDetection 3: per level, the (prior, class) pairs above ``score_thr`` and then the
``nms_pre`` best (``filter_scores_and_topk``); then, over all levels, ``nms_post_process``: boxes mapped
back to the original image, scores multiplied by score factors (centerness, IoU), boxes no wider or taller
than ``min_bbox_size`` dropped, class-wise NMS or soft-NMS and the ``max_per_img`` best kept.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from det_common.bbox import bbox_flip
from detcore import ops
from detcore.errors import ConfigError
from detcore.structures import ImageMeta, Instances

NMS_TYPES = ("nms", "soft_nms")

#: MMDetection's dense-head test settings (RetinaNet, FCOS, ...); heads and configs override them.
DENSE_TEST_CFG: dict[str, Any] = {
    "nms_pre": 1000,
    "min_bbox_size": 0,
    "score_thr": 0.05,
    "nms": {"type": "nms", "iou_threshold": 0.5},
    "max_per_img": 100,
}


def filter_scores_and_topk(scores: Tensor, score_thr: float | None, topk: int) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the (prior, class) pairs of ``scores`` (P, C) above ``score_thr`` (None: all), then the ``topk`` best.

    Returns (scores, labels, prior indices) sorted by decreasing score; ``topk <= 0`` keeps every pair.
    """
    num_classes = scores.shape[1]
    flat = scores.reshape(-1)
    if 0 < topk < flat.numel():
        # The k best above the threshold are the k best overall that pass it: one partial selection (O(n log k))
        # over every pair, with no mask, nonzero or full sort of the candidates (the costly part on a large level).
        kept_scores, index = flat.topk(topk)
        if score_thr is not None:
            passed = kept_scores > score_thr
            kept_scores, index = kept_scores[passed], index[passed]
    else:
        index = torch.arange(flat.numel(), device=flat.device) if score_thr is None else (flat > score_thr).nonzero()[:, 0]
        kept_scores, order = flat[index].sort(descending=True)
        index = index[order]
    return kept_scores, index % num_classes, index // num_classes


def map_boxes_back(boxes: Tensor, meta: ImageMeta) -> Tensor:
    """Boxes in network-input pixels -> original-image pixels (undo flip, then divide by scale_factor)."""
    if meta.flip:
        boxes = bbox_flip(boxes, meta.img_shape, meta.flip_direction or "horizontal")
    w_scale, h_scale = meta.scale_factor
    return boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])


def batched_nms_with_cfg(
    boxes: Tensor, scores: Tensor, idxs: Tensor, nms_cfg: Mapping[str, Any], class_agnostic: bool = False
) -> tuple[Tensor, Tensor]:
    """NMS within each group of ``idxs`` as ``nms_cfg`` says; returns dets (K, 5) and kept indices (K,),
    by decreasing (re-scored, for soft_nms) score.

    ``nms_cfg``: ``type`` "nms" (``iou_threshold``) or "soft_nms" (``iou_threshold``, ``sigma``,
    ``min_score``, ``method``); optional ``max_num`` keeps only the best results overall and
    ``class_agnostic`` (or the argument) ignores ``idxs``.
    """
    cfg = dict(nms_cfg)
    nms_type = cfg.pop("type", "nms")
    if nms_type not in NMS_TYPES:
        raise ConfigError(f"nms type must be one of {NMS_TYPES}, got {nms_type!r} in {dict(nms_cfg)!r}")
    max_num = int(cfg.pop("max_num", -1))
    if cfg.pop("class_agnostic", False) or class_agnostic:
        idxs = torch.zeros_like(idxs)
    if boxes.numel() == 0:
        return boxes.new_zeros((0, 5)), torch.zeros(0, dtype=torch.long, device=boxes.device)
    if nms_type == "nms":
        unknown = set(cfg) - {"iou_threshold"}
        if unknown:
            raise ConfigError(f"unknown nms options {sorted(unknown)} in {dict(nms_cfg)!r}")
        keep = ops.batched_nms(boxes, scores, idxs, float(cfg.get("iou_threshold", 0.5)))
        kept_scores = scores[keep]
    else:
        unknown = set(cfg) - {"iou_threshold", "sigma", "min_score", "method"}
        if unknown:
            raise ConfigError(f"unknown soft_nms options {sorted(unknown)} in {dict(nms_cfg)!r}")
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


def nms_post_process(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    cfg: Mapping[str, Any],
    *,
    score_factors: Tensor | None = None,
    groups: Tensor | None = None,
    meta: ImageMeta | None = None,
    rescale: bool = False,
    image_size: tuple[int, int] | None = None,
) -> tuple[Instances, Tensor]:
    """Detections from N candidates (boxes (N, 4), scores (N,), labels (N,)) as MMDetection 3 finishes them.

    In order: boxes mapped back to original pixels (``rescale``, needs ``meta``); scores multiplied by
    ``score_factors``; boxes with width or height <= ``cfg.min_bbox_size`` dropped (when it is >= 0);
    NMS (``cfg.nms``) within each group (``groups``, default the labels; the RPN passes level ids);
    the ``cfg.max_per_img`` best kept (<= 0: all). Returns the detections and the candidate index of each.
    """
    candidates = torch.arange(boxes.shape[0], device=boxes.device)
    if rescale:
        if meta is None:
            raise ValueError("nms_post_process: rescale=True needs the image meta")
        boxes = map_boxes_back(boxes, meta)
    if score_factors is not None:
        scores = scores * score_factors
    min_size = cfg.get("min_bbox_size", -1)
    if min_size is not None and min_size >= 0:
        wide = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
        if not bool(wide.all()):
            boxes, scores, labels, candidates = boxes[wide], scores[wide], labels[wide], candidates[wide]
            groups = None if groups is None else groups[wide]
    if image_size is None and meta is not None:
        image_size = tuple(meta.ori_shape) if rescale else tuple(meta.img_shape)
    nms_cfg = cfg.get("nms") or {"type": "nms", "iou_threshold": 0.5}
    dets, keep = batched_nms_with_cfg(boxes, scores, labels if groups is None else groups, nms_cfg)
    max_per_img = int(cfg.get("max_per_img", -1))
    if max_per_img > 0:
        dets, keep = dets[:max_per_img], keep[:max_per_img]
    result = Instances(image_size, boxes=dets[:, :4], scores=dets[:, 4], labels=labels[keep])
    return result, candidates[keep]


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
    """Per-class NMS of N candidates (RoI heads): boxes (N, 4) shared by all classes or (N, C, 4), scores
    (N, C) (no background column). Returns ``Instances(boxes, scores, labels)`` by decreasing score.

    Pairs with score > ``score_thr`` are kept, then multiplied by ``score_factors`` (N,) if given,
    then ``nms_post_process``; at most ``max_per_img`` results (-1: all). With ``return_inds``,
    also returns the candidate row (0..N-1) of every result.
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
    nms_cfg = {"type": "nms", "iou_threshold": 0.5} if nms_cfg is None else dict(nms_cfg)
    if class_agnostic:
        nms_cfg["class_agnostic"] = True
    valid = scores > score_thr
    rows, labels = valid.nonzero(as_tuple=True)
    factors = None if score_factors is None else score_factors[rows]
    cfg = {"nms": nms_cfg, "max_per_img": max_per_img}
    result, kept = nms_post_process(
        boxes[rows, labels], scores[rows, labels], labels, cfg, score_factors=factors, image_size=image_size
    )
    if return_inds:
        return result, rows[kept]
    return result
