"""VOCMetric: PASCAL VOC mAP at IoU 0.5 ("area" or VOC07 "11points" AP), difficult objects ignored."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from detcore.errors import ConfigError, DataError
from detcore.evaluation.base import BaseMetric
from detcore.evaluation.mean_ap import AP_MODES, eval_map


class VOCMetric(BaseMetric):
    """mAP of a VOC-style dataset; returns ``mAP`` and ``AP50`` (one ``APxx`` per IoU threshold).
    ``metric = "recall"``: proposal recall ``recall@N@IoU`` and ``AR@N`` for ``proposal_nums``
    (see :mod:`detcore.evaluation.recall`).

    Ground truth comes from the bound dataset's records (``get_data_info(i)["ann"]``: boxes,
    labels and the difficult boxes as ``bboxes_ignore``). ``classwise`` adds ``AP_<class>``.
    """

    def __init__(
        self,
        metric: str | Sequence[str] = "mAP",
        iou_thrs: float | Sequence[float] = 0.5,
        eval_mode: str = "area",
        classwise: bool = False,
        use_legacy_coordinate: bool = False,
        proposal_nums: Sequence[int] = (100, 300, 1000),
        dataset: Any = None,
    ) -> None:
        metrics = [metric] if isinstance(metric, str) else list(metric)
        if not metrics or any(m not in ("mAP", "recall") for m in metrics):
            raise ConfigError(f"VOCMetric supports metric = ['mAP'] and/or ['recall'], got {metrics}")
        self.metrics = metrics
        self.proposal_nums = [int(n) for n in proposal_nums]
        if eval_mode not in AP_MODES:
            raise ConfigError(f"VOCMetric eval_mode must be 'area' or '11points', got {eval_mode!r}")
        self.iou_thrs = [float(iou_thrs)] if isinstance(iou_thrs, (int, float)) else [float(t) for t in iou_thrs]
        self.eval_mode = eval_mode
        self.classwise = classwise
        self.use_legacy_coordinate = use_legacy_coordinate
        self.annotations: dict[Any, dict[str, np.ndarray]] = {}
        self.classes: list[str] = []
        super().__init__(dataset)

    def bind(self, dataset: Any) -> None:
        """Index the dataset's annotations by image id."""
        super().bind(dataset)
        self.classes = list(getattr(dataset, "classes", []))
        if not self.classes:
            raise ConfigError(f"VOCMetric needs a dataset with classes; {type(dataset).__name__} has none")
        self.annotations = {}
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            if "ann" not in info:
                raise DataError(f"VOCMetric: record {i} of {type(dataset).__name__} has no 'ann' entry")
            self.annotations[info["img_id"]] = info["ann"]

    def process(self, batch: Any, predictions: Sequence[Any]) -> None:
        for meta, inst in zip(batch.metas, predictions):
            arrays = inst.numpy()
            self.results.append(
                {
                    "image_id": meta.image_id,
                    "boxes": np.asarray(arrays["boxes"], dtype=np.float32).reshape(-1, 4),
                    "scores": np.asarray(arrays["scores"], dtype=np.float32).reshape(-1),
                    "labels": np.asarray(arrays["labels"], dtype=np.int64).reshape(-1),
                }
            )

    def compute(self) -> dict[str, float]:
        if not self.classes:
            raise ConfigError("VOCMetric has no ground truth: call bind(dataset) first")
        detections, annotations = [], []
        for rec in self.unique_results():
            if rec["image_id"] not in self.annotations:
                raise DataError(f"VOCMetric: image id {rec['image_id']!r} is not in the bound dataset")
            per_class = []
            for c in range(len(self.classes)):
                chosen = rec["labels"] == c
                per_class.append(np.concatenate([rec["boxes"][chosen], rec["scores"][chosen, None]], axis=1))
            detections.append(per_class)
            annotations.append(self.annotations[rec["image_id"]])
        out: dict[str, float] = {}
        if "recall" in self.metrics:  # every predicted box, best first, as a proposal (MMDetection v2)
            from detcore.evaluation.recall import eval_recalls, recall_results

            proposals = [np.concatenate([r["boxes"], r["scores"][:, None]], axis=1) for r in self.unique_results()]
            gts = [a["bboxes"] for a in annotations]
            recalls = eval_recalls(gts, proposals, self.proposal_nums, self.iou_thrs, self.use_legacy_coordinate)
            out.update(recall_results(recalls, self.proposal_nums, self.iou_thrs))
            if "mAP" not in self.metrics:
                return out
        aps = []
        for thr in self.iou_thrs:
            mean_ap, per_class = eval_map(
                detections, annotations, len(self.classes), thr, self.eval_mode, self.use_legacy_coordinate
            )
            out[f"AP{int(round(thr * 100))}"] = mean_ap
            aps.append(mean_ap)
            if self.classwise:
                for name, info in zip(self.classes, per_class):
                    out[f"AP{int(round(thr * 100))}_{name}"] = info["ap"]
        out["mAP"] = float(np.mean(aps))
        return out
