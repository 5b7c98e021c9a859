"""LVISMetric: the official LVIS evaluation (``lvis`` package, optional extra ``detcore[lvis]``): AP over IoU
.50:.95 with up to 300 detections per image, APr / APc / APf for rare / common / frequent categories, and
LVIS's federated rules (an image is judged only on the categories verified present or absent in it)."""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any, Sequence


from detcore.errors import ConfigError, DataError
from detcore.evaluation.coco_metric import CocoMetric
from detcore.optional import numpy_alias, require

logger = logging.getLogger(__name__)
RESULT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


def numpy_float_alias() -> contextlib.AbstractContextManager[None]:
    """``np.float`` while LVIS evaluates: lvis 0.5.3 (its latest release) still calls it, and numpy 1.24
    removed it."""
    return numpy_alias("float", float)


class LVISMetric(CocoMetric):
    """``metric``: "bbox" and / or "segm"; returns ``bbox_AP``, ``bbox_APr``, ... (``segm_`` likewise).
    The ground truth is the bound LVIS dataset's ``ann_file`` (or ``ann_file`` here)."""

    def __init__(self, metric: str | Sequence[str] = "bbox", max_dets: int = 300, ann_file: str | None = None,
                 dataset: Any = None, **kwargs: Any) -> None:
        self.lvis = require("lvis", "lvis", "LVISMetric")
        metrics = [metric] if isinstance(metric, str) else list(metric)
        if not metrics or any(m not in ("bbox", "segm") for m in metrics):
            raise ConfigError(f"LVISMetric metric must be 'bbox' and / or 'segm', got {metrics}")
        self.max_dets = int(max_dets)
        self.lvis_ann_file = Path(ann_file) if ann_file else None
        super().__init__(metric=metrics, ann_file=ann_file, dataset=dataset, **kwargs)

    def bind(self, dataset: Any) -> None:
        super().bind(dataset)
        if self.lvis_ann_file is None:
            self.lvis_ann_file = Path(dataset.ann_file)

    def compute(self) -> dict[str, float]:
        if self.lvis_ann_file is None or not self.lvis_ann_file.is_file():
            raise ConfigError(f"LVISMetric: LVIS annotation file {self.lvis_ann_file} not found; bind a dataset or "
                              "set ann_file")
        results = self.unique_results()
        if self.format_only:
            self.write_results(results)
            return {}
        with contextlib.redirect_stdout(io.StringIO()):
            gt = self.lvis.LVIS(str(self.lvis_ann_file))
        out: dict[str, float] = {}
        texts = []
        for metric in self.metrics:
            detections = self.to_coco_json(results, metric)
            if not detections:
                out.update({f"{metric}_{k}": 0.0 for k in RESULT_KEYS})
                continue
            unknown = {d["image_id"] for d in detections} - set(gt.imgs)
            if unknown:
                raise DataError(f"LVISMetric: image ids {sorted(unknown)[:10]} are not in {self.lvis_ann_file}")
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), numpy_float_alias():
                dt = self.lvis.LVISResults(gt, detections, max_dets=self.max_dets)
                evaluator = self.lvis.LVISEval(gt, dt, iou_type=metric)
                evaluator.params.imgIds = sorted({r["image_id"] for r in results})
                evaluator.run()
                evaluator.print_results()
            numbers = evaluator.get_results()
            out.update({f"{metric}_{k}": float(numbers[k]) for k in RESULT_KEYS})
            texts.append(f"Evaluating {metric}:\n{buffer.getvalue()}")
        self.summary_text = "\n".join(texts)
        logger.info(self.summary_text)
        return out
