"""CityscapesMetric: the official Cityscapes instance-segmentation evaluation (Cordts et al., "The Cityscapes
Dataset for Semantic Urban Scene Understanding", CVPR 2016), as the seeds' Cityscapes section names it
(``cityscapes`` next to COCO's ``bbox`` / ``segm``, "may be slightly higher than COCO").

The numbers come from ``cityscapesscripts`` (optional extra ``detcore[cityscapes]``), the benchmark's own code:
predictions are written in its submission format (one ``<image>_pred.txt`` per image listing
``<mask png> <label id> <score>``, one binary PNG per instance), matched against the ``gtFine_instanceIds.png``
files, and AP is averaged over overlaps .50:.05:.95 and over the eight classes with instances (AP50 at .50).
Its rules: masks are matched by pixel IoU; ground-truth regions under 100 pixels and group (crowd) regions are
not counted, and an unmatched prediction lying mostly on them or on void pixels is not a false positive.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from detcore.data.datasets.cityscapes import CITYSCAPES_CLASSES
from detcore.errors import ConfigError, DataError
from detcore.evaluation.coco_metric import CocoMetric, encode_masks
from detcore.optional import numpy_alias, require

logger = logging.getLogger(__name__)
#: Cityscapes label ids 0..33 (pixel value v of an instanceIds image: label v // 1000 when v >= 1000, else v)
MAX_LABEL_ID = 33
GT_SUFFIX = "_gtFine_instanceIds.png"
IMAGE_SUFFIX = "_leftImg8bit.png"


def cityscapes_gt_file(gt_dir: Path, file_name: str) -> Path:
    """``<gt_dir>/<city>/<name>_gtFine_instanceIds.png`` for an image ``<city>/<name>_leftImg8bit.png``."""
    if not file_name.endswith(IMAGE_SUFFIX):
        raise DataError(f"CityscapesMetric: image {file_name} is not named <city>/<name>{IMAGE_SUFFIX} as in "
                        "Cityscapes' leftImg8bit folders, so its gtFine file cannot be found")
    return gt_dir / (file_name[: -len(IMAGE_SUFFIX)] + GT_SUFFIX)


def check_gt_file(path: Path, width: int, height: int) -> None:
    """A readable single-channel instanceIds PNG of the image's size holding only Cityscapes label ids."""
    if not path.is_file():
        raise DataError(f"CityscapesMetric: ground-truth file {path} does not exist (expected gtFine/<split>/<city>/"
                        f"<name>{GT_SUFFIX} beside leftImg8bit/; set gt_dir if it lives elsewhere)")
    try:
        with Image.open(path) as img:
            ids = np.asarray(img)
    except Exception as exc:  # PIL raises several types for unreadable files
        raise DataError(f"CityscapesMetric: ground-truth file {path} is not a readable PNG ({exc})") from exc
    if ids.ndim != 2:
        raise DataError(f"CityscapesMetric: ground-truth file {path} has shape {ids.shape}; an instanceIds image has "
                        "one channel (16-bit: label_id * 1000 + k per instance, the bare label id elsewhere)")
    if ids.shape != (height, width):
        raise DataError(f"CityscapesMetric: ground-truth file {path} is {ids.shape[1]}x{ids.shape[0]} but its image "
                        f"is {width}x{height}")
    values = np.unique(ids).astype(np.int64)
    labels = np.where(values >= 1000, values // 1000, values)
    bad = values[(labels < 0) | (labels > MAX_LABEL_ID)]
    if bad.size:
        raise DataError(f"CityscapesMetric: ground-truth file {path} has pixel value {int(bad[0])}, which names no "
                        f"Cityscapes label (ids 0..{MAX_LABEL_ID}); is it a gtFine_instanceIds.png?")


def in1d(ar1: Any, ar2: Any, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
    """numpy's removed ``in1d`` (cityscapesscripts 2.3, its latest release, calls it to find void pixels)."""
    return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert).ravel()


class CityscapesMetric(CocoMetric):
    """``metric``: any of "cityscapes" (the official AP / AP50: ``cityscapes_AP``, ``cityscapes_AP50``, with
    ``cityscapes_AP_<class>`` when ``classwise``), "bbox", "segm" (COCO AP through :class:`CocoMetric`).

    ``gt_dir``: the ``gtFine/<split>/`` folder; by default the dataset's ``img_prefix`` with its
    ``leftImg8bit`` folder replaced by ``gtFine``. ``outfile_prefix``: keep the prediction files in
    ``<outfile_prefix>.cityscapes/`` (with ``format_only``, only write them: the official server's format).
    """

    def __init__(self, metric: str | Sequence[str] = "cityscapes", gt_dir: str | None = None,
                 outfile_prefix: str | None = None, format_only: bool = False, classwise: bool = False,
                 ann_file: str | None = None, dataset: Any = None, **kwargs: Any) -> None:
        wanted = [metric] if isinstance(metric, str) else list(metric)
        coco_metrics = [m for m in wanted if m != "cityscapes"]
        if not wanted or any(m not in ("cityscapes", "bbox", "segm") for m in wanted):
            raise ConfigError(f"CityscapesMetric metric must be among cityscapes, bbox, segm; got {wanted}")
        self.with_cityscapes = "cityscapes" in wanted
        if self.with_cityscapes:
            self.csev = require("cityscapesscripts.evaluation.evalInstanceLevelSemanticLabeling", "cityscapes",
                                "CityscapesMetric (metric 'cityscapes')", package="cityscapesscripts")
        self.gt_dir = Path(gt_dir) if gt_dir else None
        super().__init__(metric=coco_metrics or ["segm"], classwise=classwise, format_only=format_only,
                         outfile_prefix=outfile_prefix, ann_file=ann_file, dataset=dataset, **kwargs)
        self.metrics = coco_metrics

    def bind(self, dataset: Any) -> None:
        super().bind(dataset)
        if self.gt_dir is None and hasattr(dataset, "img_prefix"):
            parts = Path(dataset.img_prefix).parts
            if "leftImg8bit" in parts:
                i = len(parts) - 1 - parts[::-1].index("leftImg8bit")
                self.gt_dir = Path(*parts[:i], "gtFine", *parts[i + 1:])

    def process(self, batch: Any, predictions: Sequence[Any]) -> None:
        """CocoMetric's records, with each detection's mask as RLE (the cityscapes evaluation needs masks)."""
        start = len(self.results)
        super().process(batch, predictions)
        if not self.with_cityscapes:
            return
        for record, inst in zip(self.results[start:], predictions):
            if "masks" in record:
                continue
            if len(inst) and getattr(inst, "masks", None) is None:
                raise ConfigError("CityscapesMetric metric 'cityscapes' needs predicted masks, but the model gave none "
                                  "(use a Mask R-CNN style config, or metric 'bbox')")
            record["masks"] = encode_masks(inst.masks.cpu().numpy()) if len(inst) else []

    # -- evaluation -----------------------------------------------------------------------
    def compute(self) -> dict[str, float]:
        out = super().compute() if self.metrics else {}
        coco_text = self.summary_text if self.metrics else ""
        if not self.with_cityscapes:
            return out
        if self.coco is None:
            raise ConfigError("CityscapesMetric has no ground truth: call bind(dataset) or set ann_file")
        results = self.unique_results()
        if self.format_only:
            folder = self.write_predictions(results, Path(f"{self.outfile_prefix}.cityscapes"))
            logger.info(f"CityscapesMetric: wrote the Cityscapes submission files to {folder}")
            return out
        with tempfile.TemporaryDirectory(prefix="detcore-cityscapes-") as tmp:
            folder = Path(f"{self.outfile_prefix}.cityscapes") if self.outfile_prefix else Path(tmp) / "predictions"
            numbers, text = self._evaluate_cityscapes(results, folder, Path(tmp))
        out.update(numbers)
        self.summary_text = "\n".join(t for t in (coco_text, text) if t)
        logger.info(text)
        return out

    def label_ids(self) -> list[int]:
        """The Cityscapes label id of each class (by name, as the converter writes them)."""
        by_name = {name: label_id for label_id, name in CITYSCAPES_CLASSES.items()}
        unknown = [name for name in self.classes if name not in by_name]
        if unknown:
            raise ConfigError(f"CityscapesMetric: classes {unknown} are not Cityscapes classes with instances "
                              f"({', '.join(by_name)})")
        return [by_name[name] for name in self.classes]

    def write_predictions(self, results: list[dict[str, Any]], folder: Path) -> Path:
        """The submission format: ``<name>_pred.txt`` per image and one 0/255 PNG per predicted instance."""
        folder.mkdir(parents=True, exist_ok=True)
        label_ids = self.label_ids()
        for rec in results:
            file_name = self.coco.imgs[rec["image_id"]]["file_name"]
            stem = Path(file_name).name.removesuffix(IMAGE_SUFFIX)
            lines = []
            for i, (label, score, rle) in enumerate(zip(rec["labels"], rec["scores"], rec["masks"])):
                png = f"{stem}_{i}_{self.classes[int(label)]}.png"
                mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")})
                Image.fromarray(mask.astype(np.uint8) * 255).save(folder / png)
                lines.append(f"{png} {label_ids[int(label)]} {float(score):.6f}\n")
            (folder / f"{stem}_pred.txt").write_text("".join(lines))
        return folder

    def _evaluate_cityscapes(self, results: list[dict[str, Any]], folder: Path,
                             scratch: Path) -> tuple[dict[str, float], str]:
        """The official numbers of predictions written to ``folder`` (``scratch``: the ground-truth cache)."""
        if self.gt_dir is None:
            raise ConfigError("CityscapesMetric: set gt_dir (the gtFine/<split>/ folder); the dataset's img_prefix "
                              "has no leftImg8bit folder to derive it from")
        gt_files, pred_files = [], []
        self.write_predictions(results, folder)
        for rec in results:
            image = self.coco.imgs[rec["image_id"]]
            gt_file = cityscapes_gt_file(self.gt_dir, image["file_name"])
            check_gt_file(gt_file, int(image["width"]), int(image["height"]))
            gt_files.append(os.path.abspath(gt_file))
            stem = Path(image["file_name"]).name.removesuffix(IMAGE_SUFFIX)
            pred_files.append(os.path.abspath(folder / f"{stem}_pred.txt"))
        cs = self.csev
        args = copy.copy(cs.args)  # the benchmark's settings: overlaps .50:.05:.95, 100-pixel minimum region
        args.predictionPath, args.predictionWalk = os.path.abspath(folder), None
        args.gtInstancesFile = str(scratch / "gtInstances.json")  # its ground-truth cache: fresh for every run
        args.JSONOutput, args.quiet, args.colorized, args.csv = False, True, False, False
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer), numpy_alias("in1d", in1d):
                cs.setInstanceLabels(args)
                matches = cs.matchGtWithPreds(pred_files, gt_files, cs.getGtInstances(gt_files, args), args)
                averages = cs.computeAverages(cs.evaluateMatches(matches, args), args)
                cs.printResults(averages, args)
        except SystemExit as exc:  # cityscapesscripts reports bad input with print + sys.exit
            raise DataError(f"CityscapesMetric: cityscapesscripts stopped: {buffer.getvalue().strip()}") from exc
        numbers = {"cityscapes_AP": float(averages["allAp"]), "cityscapes_AP50": float(averages["allAp50%"])}
        if self.classwise:
            numbers.update({f"cityscapes_AP_{name}": float(averages["classes"][name]["ap"])
                            for name in args.instLabels})
        return numbers, "Evaluating cityscapes:\n" + buffer.getvalue()
