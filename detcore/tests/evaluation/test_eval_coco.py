"""CocoMetric gives exactly the numbers of pycocotools' COCOeval run directly on the same detections."""

from __future__ import annotations

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detcore.errors import ConfigError
from detcore.evaluation import CocoMetric
from detcore.structures import ImageMeta, Instances

CAT_IDS = [3, 7, 9]  # non-contiguous on purpose: label i <-> CAT_IDS[i]
NAMES = ["cat", "dog", "emu"]
SIZE = 64


def make_ground_truth(num_images: int = 6, seed: int = 0) -> COCO:
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for img_id in range(1, num_images + 1):
        images.append({"id": img_id, "width": SIZE, "height": SIZE, "file_name": f"{img_id}.png"})
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0, 30, size=2)
            w, h = rng.uniform(8, 30, size=2)
            poly = [x, y, x + w, y, x + w, y + h, x + w / 2, y + h + 2]
            poly = [float(min(max(v, 0), SIZE - 1)) for v in poly]
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": int(rng.choice(CAT_IDS)),
                         "bbox": [float(x), float(y), float(w), float(h)], "area": float(w * h), "iscrowd": 0,
                         "segmentation": [poly]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": c, "name": n} for c, n in zip(CAT_IDS, NAMES)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def make_predictions(coco: COCO, seed: int = 1) -> dict[int, Instances]:
    """Jittered copies of the ground truth (some with the wrong class) plus random false positives."""
    rng = np.random.default_rng(seed)
    out = {}
    for img_id in coco.getImgIds():
        boxes, labels, scores, masks = [], [], [], []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img_id])):
            x, y, w, h = ann["bbox"]
            dx, dy = rng.normal(0, 2, size=2)
            boxes.append([x + dx, y + dy, x + w + dx, y + h + dy])
            label = CAT_IDS.index(ann["category_id"]) if rng.random() > 0.2 else int(rng.integers(3))
            labels.append(label)
            scores.append(rng.uniform(0.3, 1.0))
            masks.append(np.roll(coco.annToMask(ann), int(round(dx)), axis=1).astype(bool))
        for _ in range(2):
            x, y = rng.uniform(0, 40, size=2)
            boxes.append([x, y, x + 15, y + 12])
            labels.append(int(rng.integers(3)))
            scores.append(rng.uniform(0.0, 0.6))
            m = np.zeros((SIZE, SIZE), bool)
            m[int(y) : int(y) + 12, int(x) : int(x) + 15] = True
            masks.append(m)
        out[img_id] = Instances(
            (SIZE, SIZE),
            boxes=torch.tensor(boxes, dtype=torch.float32),
            labels=torch.tensor(labels),
            scores=torch.tensor(scores, dtype=torch.float32),
            masks=torch.from_numpy(np.stack(masks)),
        )
    return out


def feed(metric: CocoMetric, preds: dict[int, Instances], batch_size: int = 2) -> None:
    ids = sorted(preds)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        metas = [ImageMeta((SIZE, SIZE), (SIZE, SIZE), (SIZE, SIZE), image_id=i) for i in chunk]
        metric.process(SimpleNamespace(metas=metas), [preds[i] for i in chunk])


def direct_results(preds: dict[int, Instances], kind: str) -> list[dict]:
    """COCO results JSON written independently of CocoMetric."""
    out = []
    for img_id, inst in preds.items():
        for i in range(len(inst)):
            x1, y1, x2, y2 = inst.boxes[i].tolist()
            entry = {"image_id": img_id, "category_id": CAT_IDS[int(inst.labels[i])], "score": float(inst.scores[i])}
            if kind == "bbox":
                entry["bbox"] = [x1, y1, x2 - x1, y2 - y1]
            else:
                rle = mask_utils.encode(np.asfortranarray(inst.masks[i].numpy().astype(np.uint8)))
                rle["counts"] = rle["counts"].decode()
                entry["segmentation"] = rle
            out.append(entry)
    return out


def direct_stats(coco: COCO, results: list[dict], iou_type: str, cat_ids=None, use_cats=True, max_dets=None):
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(results), iou_type)
        ev.params.imgIds = sorted(coco.getImgIds())
        if cat_ids is not None:
            ev.params.catIds = cat_ids
        if not use_cats:
            ev.params.useCats = 0
            ev.params.maxDets = max_dets
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.fixture(scope="module")
def data():
    coco = make_ground_truth()
    return coco, make_predictions(coco)


def dataset_of(coco):
    return SimpleNamespace(coco=coco, cat_ids=CAT_IDS, classes=NAMES)


def test_bbox_and_segm_equal_cocoeval(data):
    coco, preds = data
    metric = CocoMetric(metric=["bbox", "segm"], dataset=dataset_of(coco))
    feed(metric, preds)
    feed(metric, {1: preds[1]})  # a repeated image (distributed padding) is counted once
    results = metric.compute()
    for kind in ("bbox", "segm"):
        stats = direct_stats(coco, direct_results(preds, kind), kind)
        got = [results[f"{kind}_{k}"] for k in ("mAP", "mAP_50", "mAP_75", "mAP_s", "mAP_m", "mAP_l")]
        assert got == pytest.approx(list(stats[:6]), abs=1e-12)
    assert 0.05 < results["bbox_mAP"] < 0.95  # a non-trivial case


def test_classwise_ap_equals_single_category_evaluation(data):
    coco, preds = data
    metric = CocoMetric(metric="bbox", classwise=True, dataset=dataset_of(coco))
    feed(metric, preds)
    results = metric.compute()
    detections = direct_results(preds, "bbox")
    for cat_id, name in zip(CAT_IDS, NAMES):
        expected = direct_stats(coco, detections, "bbox", cat_ids=[cat_id])[0]
        assert results[f"bbox_AP_{name}"] == pytest.approx(expected, abs=1e-12)


def test_proposal_recall_equals_cocoeval_without_categories(data):
    coco, preds = data
    metric = CocoMetric(metric="proposal", proposal_nums=(1, 2, 10), dataset=dataset_of(coco))
    feed(metric, preds)
    results = metric.compute()
    stats = direct_stats(coco, direct_results(preds, "bbox"), "bbox", use_cats=False, max_dets=[1, 2, 10])
    keys = ["AR@1", "AR@2", "AR@10", "AR_s@10", "AR_m@10", "AR_l@10"]
    assert [results[k] for k in keys] == pytest.approx(list(stats[6:12]), abs=1e-12)
    assert results["AR@1"] < results["AR@10"]


def test_format_only_writes_results_json(data, tmp_path):
    coco, preds = data
    metric = CocoMetric(metric=["bbox", "segm"], format_only=True, outfile_prefix=str(tmp_path / "out" / "res"),
                        dataset=dataset_of(coco))
    feed(metric, preds)
    assert metric.compute() == {}
    written = json.loads((tmp_path / "out" / "res.bbox.json").read_text())
    expected = direct_results(preds, "bbox")
    assert len(written) == len(expected)
    for w, e in zip(sorted(written, key=lambda r: (r["image_id"], -r["score"])),
                    sorted(expected, key=lambda r: (r["image_id"], -r["score"]))):
        assert w["category_id"] == e["category_id"] and w["bbox"] == pytest.approx(e["bbox"], abs=1e-4)
    segm = json.loads((tmp_path / "out" / "res.segm.json").read_text())
    assert len(segm) == len(expected) and "counts" in segm[0]["segmentation"]


def test_ann_file_and_error_cases(data, tmp_path):
    coco, preds = data
    ann_file = tmp_path / "gt.json"
    ann_file.write_text(json.dumps(coco.dataset, default=bytes.decode))  # COCOeval turns GT polygons into RLE
    metric = CocoMetric(metric="bbox", ann_file=str(ann_file))
    feed(metric, preds)
    stats = direct_stats(coco, direct_results(preds, "bbox"), "bbox")
    assert metric.compute()["bbox_mAP"] == pytest.approx(stats[0], abs=1e-12)
    with pytest.raises(ConfigError, match="keypoints"):
        CocoMetric(metric="keypoints")
    with pytest.raises(ConfigError, match="outfile_prefix"):
        CocoMetric(format_only=True)
    with pytest.raises(ConfigError, match="COCO-style dataset"):
        CocoMetric(dataset=SimpleNamespace(classes=["a"]))
    no_masks = CocoMetric(metric="segm", dataset=dataset_of(coco))
    inst = Instances((SIZE, SIZE), boxes=torch.zeros(1, 4), labels=torch.zeros(1, dtype=torch.long), scores=torch.ones(1))
    with pytest.raises(ConfigError, match="masks"):
        no_masks.process(SimpleNamespace(metas=[ImageMeta((1, 1), (1, 1), (1, 1), image_id=1)]), [inst])
    empty = CocoMetric(metric="bbox", dataset=dataset_of(coco))
    empty.process(SimpleNamespace(metas=[ImageMeta((1, 1), (1, 1), (1, 1), image_id=1)]), [Instances.empty()])
    assert empty.compute()["bbox_mAP"] == 0.0
