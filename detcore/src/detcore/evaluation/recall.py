"""Proposal recall without COCOeval: MMDetection v2's VOC ``recall`` and COCO ``proposal_fast`` metrics.

Per image, the ``N`` best-scored proposals are matched one-to-one to the ground-truth boxes greedily
(repeatedly the pair of highest IoU, both then removed); a ground-truth box is recalled at threshold ``t``
when its matched IoU is at least ``t``. ``recall[n, t]`` is the recalled fraction of all ground-truth boxes
over the dataset; AR@N averages it over the thresholds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

COCO_IOU_THRS = tuple(float(t) for t in np.linspace(0.5, 0.95, 10))


def _matched_ious(ious: np.ndarray) -> np.ndarray:
    """IoU of each ground-truth box (rows) with its greedily matched proposal (columns); 0 when unmatched."""
    ious = ious.copy()
    out = np.zeros(ious.shape[0], dtype=np.float64)
    for _ in range(min(ious.shape)):
        gt, box = np.unravel_index(int(ious.argmax()), ious.shape)
        if ious[gt, box] < 0:
            break
        out[gt] = ious[gt, box]
        ious[gt, :] = -1
        ious[:, box] = -1
    return out


def eval_recalls(
    gt_boxes: Sequence[np.ndarray],
    proposals: Sequence[np.ndarray],
    proposal_nums: Sequence[int] = (100, 300, 1000),
    iou_thrs: Sequence[float] = (0.5,),
    legacy_coordinate: bool = False,
) -> np.ndarray:
    """(len(proposal_nums), len(iou_thrs)) recalls. ``proposals[i]`` is (n, 4) sorted best first, or (n, 5)
    with scores (sorted here); ``legacy_coordinate`` measures boxes as ``x2 - x1 + 1`` (VOC devkit)."""
    if len(gt_boxes) != len(proposals):
        raise ValueError(f"eval_recalls: {len(gt_boxes)} images of ground truth but {len(proposals)} of proposals")
    total = sum(len(g) for g in gt_boxes)
    recalls = np.zeros((len(proposal_nums), len(iou_thrs)))
    if total == 0:
        return recalls
    for k, num in enumerate(proposal_nums):
        matched = []
        for gts, props in zip(gt_boxes, proposals):
            gts = np.asarray(gts, dtype=np.float64).reshape(-1, 4)
            props = np.asarray(props, dtype=np.float64)
            props = props.reshape(-1, props.shape[-1] if props.ndim == 2 else 4)
            if props.shape[1] == 5:
                props = props[np.argsort(-props[:, 4], kind="stable")]
            props = props[:num, :4]
            if len(gts) == 0:
                continue
            if len(props) == 0:
                matched.append(np.zeros(len(gts)))
                continue
            offset = 1.0 if legacy_coordinate else 0.0
            a, b = torch.from_numpy(gts), torch.from_numpy(props)
            if offset:
                a, b = a + torch.tensor([0, 0, offset, offset]), b + torch.tensor([0, 0, offset, offset])
            matched.append(_matched_ious(box_iou(a, b).numpy()))
        ious = np.concatenate(matched)
        recalls[k] = [(ious >= thr).sum() / total for thr in iou_thrs]
    return recalls


def recall_results(recalls: np.ndarray, proposal_nums: Sequence[int], iou_thrs: Sequence[float],
                   per_threshold: bool = True) -> dict[str, float]:
    """``recall@N@IoU`` for each pair (when ``per_threshold``) and ``AR@N`` (mean over the thresholds)."""
    out: dict[str, float] = {}
    for i, num in enumerate(proposal_nums):
        if per_threshold:
            for j, thr in enumerate(iou_thrs):
                out[f"recall@{num}@{thr:g}"] = float(recalls[i, j])
        out[f"AR@{num}"] = float(recalls[i].mean())
    return out
