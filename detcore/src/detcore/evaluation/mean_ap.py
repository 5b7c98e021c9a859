"""PASCAL VOC style average precision: TP/FP matching with ignored (difficult) boxes, area and 11-point AP."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from detcore.errors import ConfigError

AP_MODES = ("area", "11points")


def box_iou(a: np.ndarray, b: np.ndarray, legacy_coordinate: bool = False) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes; ``legacy_coordinate`` adds 1 to widths and heights."""
    extra = 1.0 if legacy_coordinate else 0.0
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    area_a = (a[:, 2] - a[:, 0] + extra) * (a[:, 3] - a[:, 1] + extra)
    area_b = (b[:, 2] - b[:, 0] + extra) * (b[:, 3] - b[:, 1] + extra)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt + extra, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return inter / np.maximum(union, np.finfo(np.float64).eps)


def match_detections(
    det_boxes: np.ndarray,
    gt_boxes: np.ndarray,
    ignore_boxes: np.ndarray,
    iou_thr: float,
    legacy_coordinate: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """TP and FP flags of one image's detections (already sorted by descending score).

    A detection whose best-overlapping box is an ignored (difficult) one counts as neither;
    each ground truth matches at most one detection, later ones are false positives.
    """
    n = len(det_boxes)
    tp = np.zeros(n, dtype=np.float64)
    fp = np.zeros(n, dtype=np.float64)
    all_gt = np.concatenate([gt_boxes.reshape(-1, 4), ignore_boxes.reshape(-1, 4)])
    if len(all_gt) == 0:
        fp[:] = 1.0
        return tp, fp
    is_ignored = np.r_[np.zeros(len(gt_boxes), bool), np.ones(len(ignore_boxes), bool)]
    ious = box_iou(det_boxes, all_gt, legacy_coordinate)
    best = ious.argmax(axis=1)
    best_iou = ious.max(axis=1)
    covered = np.zeros(len(all_gt), dtype=bool)
    for i in range(n):
        j = best[i]
        if best_iou[i] >= iou_thr:
            if is_ignored[j]:
                continue
            if not covered[j]:
                covered[j] = True
                tp[i] = 1.0
            else:
                fp[i] = 1.0
        else:
            fp[i] = 1.0
    return tp, fp


def average_precision(recalls: np.ndarray, precisions: np.ndarray, mode: str = "area") -> float:
    """AP from a precision/recall curve: area under the monotone envelope, or the 11-point VOC07 mean."""
    if mode not in AP_MODES:
        raise ConfigError(f"VOC AP mode must be 'area' or '11points', got {mode!r}")
    if mode == "11points":
        ap = 0.0
        for t in np.linspace(0.0, 1.0, 11):
            above = precisions[recalls >= t]
            ap += (above.max() if above.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], recalls, [1.0]])
    mpre = np.concatenate([[0.0], precisions, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def eval_map(
    detections: Sequence[Sequence[np.ndarray]],
    annotations: Sequence[dict[str, np.ndarray]],
    num_classes: int,
    iou_thr: float = 0.5,
    mode: str = "area",
    legacy_coordinate: bool = False,
) -> tuple[float, list[dict[str, float]]]:
    """mAP over classes that have ground truth, and per-class ``{ap, num_gts, num_dets, recall}``.

    ``detections[i][c]`` is an (n, 5) array ``x1, y1, x2, y2, score`` of image ``i`` and class
    ``c``; ``annotations[i]`` has ``bboxes``, ``labels``, ``bboxes_ignore``, ``labels_ignore``.
    """
    if len(detections) != len(annotations):
        raise ValueError(f"eval_map: {len(detections)} detection lists but {len(annotations)} annotations")
    per_class = []
    for c in range(num_classes):
        scores, tps, fps = [], [], []
        num_gts = 0
        for dets, ann in zip(detections, annotations):
            d = np.asarray(dets[c], dtype=np.float64).reshape(-1, 5)
            d = d[np.argsort(-d[:, 4], kind="stable")]
            gt = np.asarray(ann["bboxes"]).reshape(-1, 4)[np.asarray(ann["labels"]) == c]
            ign_labels = np.asarray(ann.get("labels_ignore", np.zeros(0)))
            ign = np.asarray(ann.get("bboxes_ignore", np.zeros((0, 4)))).reshape(-1, 4)[ign_labels == c]
            num_gts += len(gt)
            tp, fp = match_detections(d[:, :4], gt, ign, iou_thr, legacy_coordinate)
            scores.append(d[:, 4])
            tps.append(tp)
            fps.append(fp)
        score = np.concatenate(scores)
        order = np.argsort(-score, kind="stable")
        tp = np.concatenate(tps)[order]
        fp = np.concatenate(fps)[order]
        keep = (tp + fp) > 0  # drop detections matched to ignored boxes
        tp_cum, fp_cum = np.cumsum(tp[keep]), np.cumsum(fp[keep])
        recalls = tp_cum / max(num_gts, 1)
        precisions = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
        ap = average_precision(recalls, precisions, mode) if num_gts > 0 else 0.0
        per_class.append(
            {
                "ap": ap,
                "num_gts": num_gts,
                "num_dets": int(keep.sum()),
                "recall": float(recalls[-1]) if recalls.size else 0.0,
            }
        )
    with_gt = [r["ap"] for r in per_class if r["num_gts"] > 0]
    mean_ap = float(np.mean(with_gt)) if with_gt else 0.0
    return mean_ap, per_class
