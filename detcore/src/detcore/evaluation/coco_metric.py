"""CocoMetric: COCO box/mask AP and proposal recall through pycocotools' COCOeval, or results export.

Result keys follow MMDetection v2: ``bbox_mAP``, ``bbox_mAP_50``, ``bbox_mAP_75``,
``bbox_mAP_s``, ``bbox_mAP_m``, ``bbox_mAP_l`` (same with ``segm_``), ``AR@100``,
``AR@300``, ``AR@1000``, ``AR_s@1000``, ``AR_m@1000``, ``AR_l@1000`` for "proposal" (with
the configured ``proposal_nums``), and ``bbox_AP_<class>`` per class when ``classwise``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detcore.errors import ConfigError, DataError
from detcore.evaluation.base import BaseMetric

METRICS = ("bbox", "segm", "proposal", "proposal_fast")
SUMMARY_KEYS = ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")
logger = logging.getLogger(__name__)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """COCO results use [x, y, width, height]."""
    out = np.asarray(boxes, dtype=np.float64).copy()
    out[:, 2:] -= out[:, :2]
    return out


def encode_masks(masks: np.ndarray) -> list[dict[str, Any]]:
    """(N, H, W) boolean masks -> COCO RLE dicts with str counts (JSON-ready)."""
    rles = mask_utils.encode(np.asfortranarray(np.asarray(masks, dtype=np.uint8).transpose(1, 2, 0)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return list(rles)


class CocoMetric(BaseMetric):
    """COCO evaluation of detections in original-image pixels.

    ``metric``: any of "bbox", "segm", "proposal", "proposal_fast" (AR@N by greedy matching, no COCOeval:
    :mod:`detcore.evaluation.recall`). ``proposal_nums``: detections per image
    for the recall numbers. ``classwise``: add per-class AP. ``format_only``: only write
    ``<outfile_prefix>.bbox.json`` / ``.segm.json`` (e.g. for test-dev) and return no numbers.
    The ground truth is ``dataset.coco`` (from ``bind(dataset)``) or ``ann_file``.
    """

    def __init__(
        self,
        metric: str | Sequence[str] = "bbox",
        classwise: bool = False,
        proposal_nums: Sequence[int] = (100, 300, 1000),
        iou_thrs: Sequence[float] | None = None,
        format_only: bool = False,
        outfile_prefix: str | None = None,
        ann_file: str | None = None,
        dataset: Any = None,
    ) -> None:
        self.metrics = [metric] if isinstance(metric, str) else list(metric)
        bad = [m for m in self.metrics if m not in METRICS]
        if bad or not self.metrics:
            hint = " ('cityscapes' is CityscapesMetric's: set evaluation.type = \"CityscapesMetric\")" \
                if "cityscapes" in bad else ""
            raise ConfigError(f"CocoMetric metric must be among {', '.join(METRICS)}; got {self.metrics}{hint}")
        if format_only and not outfile_prefix:
            raise ConfigError("CocoMetric format_only = true needs outfile_prefix (where to write the JSON)")
        self.classwise = classwise
        self.proposal_nums = [int(n) for n in proposal_nums]
        if len(self.proposal_nums) != 3:
            raise ConfigError(f"CocoMetric proposal_nums needs three numbers, got {self.proposal_nums}")
        self.iou_thrs = None if iou_thrs is None else np.asarray(iou_thrs, dtype=np.float64)
        self.format_only = format_only
        self.outfile_prefix = outfile_prefix
        self.ann_file = ann_file
        self.coco: COCO | None = None
        self.cat_ids: list[int] = []
        self.classes: list[str] = []
        self.summary_text = ""
        super().__init__(dataset)
        if dataset is None and ann_file is not None:
            self._load_ann_file(ann_file)

    # -- ground truth ---------------------------------------------------------------------
    def bind(self, dataset: Any) -> None:
        """Take the pycocotools index and the label <-> category mapping from a CocoDataset."""
        super().bind(dataset)
        if self.ann_file is not None:
            return
        if not hasattr(dataset, "coco") or not hasattr(dataset, "cat_ids"):
            raise ConfigError(
                f"CocoMetric needs a COCO-style dataset (with 'coco' and 'cat_ids'); got "
                f"{type(dataset).__name__}. Use VOCMetric for VOC data or set ann_file."
            )
        self.coco = dataset.coco
        self.cat_ids = list(dataset.cat_ids)
        self.classes = list(getattr(dataset, "classes", []))

    def _load_ann_file(self, ann_file: str) -> None:
        if not Path(ann_file).is_file():
            raise DataError(f"CocoMetric ann_file {ann_file} does not exist")
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(ann_file))
        self.cat_ids = sorted(self.coco.getCatIds())
        self.classes = [self.coco.cats[c]["name"] for c in self.cat_ids]

    # -- accumulation ---------------------------------------------------------------------
    def process(self, batch: Any, predictions: Sequence[Any]) -> None:
        """Keep each image's boxes/scores/labels (and RLE masks when "segm" is asked for)."""
        for meta, inst in zip(batch.metas, predictions):
            arrays = inst.numpy()
            n = len(inst)
            record: dict[str, Any] = {
                "image_id": meta.image_id,
                "boxes": np.asarray(arrays.get("boxes", np.zeros((0, 4))), dtype=np.float32).reshape(-1, 4),
                "scores": np.asarray(arrays.get("scores", np.ones(n)), dtype=np.float32).reshape(-1),
                "labels": np.asarray(arrays.get("labels", np.zeros(n)), dtype=np.int64).reshape(-1),
            }
            if "segm" in self.metrics:
                if "masks" not in arrays:
                    raise ConfigError("CocoMetric metric 'segm' needs predicted masks, but the model gave none")
                record["masks"] = encode_masks(arrays["masks"]) if n else []
            self.results.append(record)

    def to_coco_json(self, results: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
        """COCO results entries (``image_id``, ``category_id``, ``bbox`` xywh or ``segmentation``, ``score``)."""
        out = []
        for rec in results:
            labels = rec["labels"]
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self.cat_ids)):
                raise DataError(
                    f"CocoMetric: image {rec['image_id']} has predicted labels outside 0..{len(self.cat_ids) - 1}"
                )
            xywh = xyxy_to_xywh(rec["boxes"]) if len(rec["boxes"]) else np.zeros((0, 4))
            for i in range(len(labels)):
                entry = {
                    "image_id": rec["image_id"],
                    "category_id": int(self.cat_ids[labels[i]]),
                    "score": float(rec["scores"][i]),
                }
                if kind == "segm":
                    entry["segmentation"] = rec["masks"][i]
                else:
                    entry["bbox"] = [float(v) for v in xywh[i]]
                out.append(entry)
        return out

    # -- evaluation -----------------------------------------------------------------------
    def compute(self) -> dict[str, float]:
        """COCOeval numbers for every requested metric (or write the JSON files when ``format_only``)."""
        if self.coco is None:
            raise ConfigError("CocoMetric has no ground truth: call bind(dataset) or set ann_file")
        results = self.unique_results()
        if self.format_only:
            self.write_results(results)
            return {}
        image_ids = sorted({rec["image_id"] for rec in results})
        out: dict[str, float] = {}
        texts = []
        for metric in self.metrics:
            if metric == "proposal_fast":
                out.update(self.fast_recall(results))
                continue
            kind = "bbox" if metric == "proposal" else metric
            detections = self.to_coco_json(results, kind)
            numbers, text = self._evaluate(metric, detections, image_ids)
            out.update(numbers)
            texts.append(f"Evaluating {metric}:\n{text}")
        self.summary_text = "\n".join(texts)
        logger.info(self.summary_text)
        return out

    def fast_recall(self, results: list[dict[str, Any]]) -> dict[str, float]:
        """``proposal_fast``: AR@N over IoU .50:.95 by greedy matching (:mod:`detcore.evaluation.recall`),
        without COCOeval; crowd / ignored objects are left out of the ground truth."""
        from detcore.evaluation.recall import COCO_IOU_THRS, eval_recalls, recall_results

        gts, proposals = [], []
        for rec in results:
            anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[rec["image_id"]]))
            boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                     for a in anns if not a.get("iscrowd", 0) and not a.get("ignore", False)]
            gts.append(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
            proposals.append(np.concatenate([rec["boxes"], rec["scores"][:, None]], axis=1))
        thrs = list(self.iou_thrs) if self.iou_thrs is not None else list(COCO_IOU_THRS)
        recalls = eval_recalls(gts, proposals, self.proposal_nums, thrs)
        return recall_results(recalls, self.proposal_nums, thrs, per_threshold=False)

    def write_results(self, results: list[dict[str, Any]]) -> list[Path]:
        """Write ``<outfile_prefix>.bbox.json`` (and ``.segm.json``); returns the paths."""
        prefix = Path(self.outfile_prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        paths = []
        for kind in ("bbox", "segm"):
            if kind == "segm" and "segm" not in self.metrics:
                continue
            path = prefix.with_name(f"{prefix.name}.{kind}.json")
            path.write_text(json.dumps(self.to_coco_json(results, kind)))
            paths.append(path)
        return paths

    def _evaluate(self, metric: str, detections: list[dict[str, Any]], image_ids: list[Any]) -> tuple[dict[str, float], str]:
        if metric == "proposal":
            keys = [
                f"AR@{self.proposal_nums[0]}", f"AR@{self.proposal_nums[1]}", f"AR@{self.proposal_nums[2]}",
                f"AR_s@{self.proposal_nums[2]}", f"AR_m@{self.proposal_nums[2]}", f"AR_l@{self.proposal_nums[2]}",
            ]
        else:
            keys = [f"{metric}_{k}" for k in SUMMARY_KEYS]
        if not detections:
            # COCOeval cannot load an empty result list; no detections means zero AP and recall.
            numbers = {k: 0.0 for k in keys}
            if self.classwise and metric != "proposal":
                numbers.update({f"{metric}_AP_{name}": 0.0 for name in self.classes})
            return numbers, "no detections"
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            coco_dt = self.coco.loadRes(detections)
            coco_eval = COCOeval(self.coco, coco_dt, "segm" if metric == "segm" else "bbox")
            coco_eval.params.imgIds = image_ids
            coco_eval.params.catIds = self.cat_ids
            if self.iou_thrs is not None:
                coco_eval.params.iouThrs = self.iou_thrs
            if metric == "proposal":
                coco_eval.params.useCats = 0
                coco_eval.params.maxDets = list(self.proposal_nums)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        stats = coco_eval.stats
        indices = range(6, 12) if metric == "proposal" else range(0, 6)
        numbers = {key: float(stats[i]) for key, i in zip(keys, indices)}
        if self.classwise and metric != "proposal":
            numbers.update(self._per_class_ap(coco_eval, metric))
        return numbers, buffer.getvalue()

    def _per_class_ap(self, coco_eval: COCOeval, metric: str) -> dict[str, float]:
        """AP@[.50:.95] of each class (area all, largest maxDets); NaN for a class without ground truth."""
        precision = coco_eval.eval["precision"]  # (iou, recall, class, area, maxdet)
        order = sorted(self.cat_ids)  # COCOeval sorts params.catIds
        out = {}
        for cat_id, name in zip(self.cat_ids, self.classes):
            values = precision[:, :, order.index(cat_id), 0, -1]
            values = values[values > -1]
            out[f"{metric}_AP_{name}"] = float(values.mean()) if values.size else float("nan")
        return out
