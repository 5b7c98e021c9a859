"""``detcore analyze-results``: COCO error analysis (Hoiem et al., "Diagnosing Error in Object
Detectors", as the COCO detection-eval page and Detectron present it).

For each class and over all classes, precision-recall curves under successively relaxed judging:
``C75`` (IoU .75), ``C50`` (IoU .5), ``Loc`` (IoU .1: localisation errors forgiven), ``Sim``
(also forgiven: detections on objects of another class of the same supercategory), ``Oth``
(also: detections on objects of any other class), ``BG`` (also: every background false positive,
so precision is 1 up to the recall reached), ``FN`` (also: every missed object, precision 1 at
every recall). A bucket's area is its AP; the gap between two curves is what that error costs.
Forgiven confusions are modelled by relabelling the other classes' objects as ignored (crowd)
objects of the class judged, so detections on them count neither as right nor as wrong.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detcore.errors import DataError

BUCKETS = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
AREAS = ("all", "small", "medium", "large")
COLORS = ((0.98, 0.93, 0.55), (0.31, 0.51, 0.74), (0.75, 0.31, 0.30), (0.36, 0.90, 0.38),
          (0.50, 0.39, 0.64), (1.0, 0.6, 0.0), (0.8, 0.8, 0.8))


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def _precision(gt: COCO, dt: COCO, iou_type: str, iou_thrs: list[float], cat_ids: list[int] | None = None) -> np.ndarray:
    """COCOeval precision (T, R, K, A) at ``iou_thrs``, 100 detections per image, -1 -> 0."""
    ev = COCOeval(gt, dt, iou_type)
    ev.params.imgIds = sorted(gt.getImgIds())
    ev.params.iouThrs = np.array(iou_thrs)
    ev.params.maxDets = [100]
    if cat_ids is not None:
        ev.params.catIds = cat_ids
    _quiet(ev.evaluate)
    _quiet(ev.accumulate)
    precision = ev.eval["precision"][:, :, :, :, 0].copy()
    precision[precision < 0] = 0
    return precision


def _with_confusions_ignored(gt: COCO, cat_id: int, ignored_cats: set[int]) -> COCO:
    """A copy of ``gt`` where the objects of ``ignored_cats`` become ignored objects of ``cat_id``."""
    dataset = copy.deepcopy(gt.dataset)
    for ann in dataset["annotations"]:
        if ann["category_id"] in ignored_cats:
            ann["category_id"] = cat_id
            ann["iscrowd"] = 1
    out = COCO()
    out.dataset = dataset
    _quiet(out.createIndex)
    return out


def _detections_of(dt: COCO, cat_id: int) -> COCO:
    out = COCO()
    out.dataset = {**{k: v for k, v in dt.dataset.items() if k != "annotations"},
                   "annotations": [a for a in dt.dataset["annotations"] if a["category_id"] == cat_id]}
    _quiet(out.createIndex)
    return out


def error_curves(gt: COCO, dt: COCO, iou_type: str = "bbox") -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Precision (7 buckets, 101 recall points, K classes, 4 areas), the recall points and the class ids."""
    cat_ids = sorted(gt.getCatIds())
    base = _precision(gt, dt, iou_type, [0.75, 0.5, 0.1])
    curves = np.zeros((len(BUCKETS), *base.shape[1:]))
    curves[:3] = base
    for k, cat_id in enumerate(cat_ids):
        supercategory = gt.loadCats(cat_id)[0].get("supercategory")
        same_super = {c for c in cat_ids if c != cat_id and gt.loadCats(c)[0].get("supercategory") == supercategory}
        others = set(cat_ids) - {cat_id}
        mine = _detections_of(dt, cat_id)
        for bucket, ignored in ((3, same_super), (4, others)):
            relabelled = _with_confusions_ignored(gt, cat_id, ignored)
            curves[bucket, :, k] = _precision(relabelled, mine, iou_type, [0.1], [cat_id])[0, :, 0]
    curves[5] = curves[4] > 0
    curves[6] = 1.0
    return curves, np.linspace(0.0, 1.0, 101), cat_ids


def plot_curves(recall: np.ndarray, curves: np.ndarray, title: str, out_file: Path) -> dict[str, float]:
    """Stacked PR areas, one colour per bucket, AP in the legend; returns the APs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aps = {name: float(curves[i].mean()) for i, name in enumerate(BUCKETS)}
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=100)
    for i in range(len(BUCKETS) - 1, -1, -1):  # widest first, narrower areas painted over
        ax.fill_between(recall, curves[i], color=COLORS[i], label=f"[{aps[BUCKETS[i]]:.3f}] {BUCKETS[i]}")
        ax.plot(recall, curves[i], color="k", linewidth=0.5)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="recall", ylabel="precision", title=title)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=9)
    fig.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file)
    plt.close(fig)
    return aps


def load_results(gt: COCO, result_file: Path) -> COCO:
    """COCO results JSON (a list of {image_id, category_id, bbox | segmentation, score})."""
    try:
        results = json.loads(Path(result_file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"result file {result_file} could not be read as JSON ({exc})") from exc
    if not isinstance(results, list):
        raise DataError(f"result file {result_file} must hold a list of COCO result records "
                        "(detcore test --format-only writes one)")
    for i, record in enumerate(results):
        missing = {"image_id", "category_id", "score"} - set(record)
        if missing or not ({"bbox", "segmentation"} & set(record)):
            raise DataError(f"result file {result_file}: entry {i} lacks {sorted(missing) or 'bbox/segmentation'}")
    if not results:
        raise DataError(f"result file {result_file} holds no detections")
    return _quiet(gt.loadRes, results)


def analyze_results(result_file: str | Path, ann_file: str | Path, out_dir: str | Path,
                    iou_type: str = "bbox", areas: tuple[str, ...] = AREAS) -> dict[str, dict[str, dict[str, float]]]:
    """Write ``OUT/<iou_type>/<class>-<area>.png`` (and ``allclass-<area>.png``) and ``summary.json``;
    return ``{class: {area: {bucket: AP}}}``. The overall curves average the classes that have objects."""
    if not Path(ann_file).is_file():
        raise DataError(f"annotation file {ann_file} does not exist")
    gt = _quiet(COCO, str(ann_file))
    dt = load_results(gt, Path(result_file))
    curves, recall, cat_ids = error_curves(gt, dt, iou_type)
    out = Path(out_dir) / iou_type
    summary: dict[str, dict[str, dict[str, float]]] = {}
    with_objects = [k for k, c in enumerate(cat_ids) if gt.getAnnIds(catIds=[c], iscrowd=False)]
    for a, area in enumerate(AREAS):
        if area not in areas:
            continue
        for k, cat_id in enumerate(cat_ids):
            name = gt.loadCats(cat_id)[0]["name"]
            file_stem = re.sub(r"[^\w.-]+", "_", name)
            summary.setdefault(name, {})[area] = plot_curves(
                recall, curves[:, :, k, a], f"{name} ({area})", out / f"{file_stem}-{area}.png")
        overall = curves[:, :, with_objects, a].mean(axis=2) if with_objects else curves[:, :, :0, a].sum(axis=2)
        summary.setdefault("allclass", {})[area] = plot_curves(recall, overall, f"all classes ({area})",
                                                               out / f"allclass-{area}.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
