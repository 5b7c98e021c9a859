"""Shared machinery of the detection datasets: paths, records, filtering, proposals, pipeline.

Every dataset turns its annotation file into *records* in the manual's middle format (`003`
§2.4.1): ``{img_id, file_name, filename (full path), width, height, ann: {bboxes (n, 4) float32
XYXY, labels (n,) int64 contiguous, bboxes_ignore (k, 4), labels_ignore (k,), masks? (list of
COCO segmentations)}}``.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from detcore.data.datasets.problems import ProblemReport, read_json
from detcore.data.transforms.compose import build_pipeline
from detcore.errors import DataError
from detcore.interfaces.data import Dataset

# How often a training sample dropped by its pipeline (e.g. RandomCrop) is replaced by another image.
MAX_RETRIES = 20


def _join(root: str | Path | None, path: str | Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    return path if root is None or path.is_absolute() else Path(root) / path


def empty_ann() -> dict[str, np.ndarray]:
    """An annotation with no objects and no ignore regions."""
    return {
        "bboxes": np.zeros((0, 4), dtype=np.float32),
        "labels": np.zeros((0,), dtype=np.int64),
        "bboxes_ignore": np.zeros((0, 4), dtype=np.float32),
        "labels_ignore": np.zeros((0,), dtype=np.int64),
    }


def make_ann(boxes: list, labels: list, ignore_boxes: list, ignore_labels: list) -> dict[str, np.ndarray]:
    """Middle-format annotation arrays from python lists."""
    return {
        "bboxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, dtype=np.int64).reshape(-1),
        "bboxes_ignore": np.asarray(ignore_boxes, dtype=np.float32).reshape(-1, 4),
        "labels_ignore": np.asarray(ignore_labels, dtype=np.int64).reshape(-1),
    }


class DetDataset(Dataset):
    """Base of the detection datasets (MMDetection's CustomDataset arguments).

    ``ann_file``, ``img_prefix``, ``seg_prefix`` and ``proposal_file`` are relative to
    ``data_root`` when given. In training (``test_mode=False``) images without objects are
    dropped when ``filter_empty_gt``. ``on_bad_box`` ("error" | "skip" | "clip") handles boxes
    outside the image or without area; boxes narrower or shorter than ``min_box_size`` are dropped.
    ``check_files`` verifies up front that every image file exists. ``proposal_file`` is a JSON
    object mapping each image id to a list of [x1, y1, x2, y2(, score)], or the list of per-image
    records (``image_id``, ``boxes``, ``scores``) that ``detcore test --out`` writes. ``seg_prefix`` is the folder
    of the per-image semantic maps (``LoadAnnotations(with_seg=True)``); an image's map is named
    like its file with the suffix ``seg_suffix`` (COCO-stuff's ``stuffthingmaps`` layout).
    """

    def __init__(
        self,
        ann_file: str | Path,
        pipeline: Sequence[Mapping[str, Any] | Any] | None = None,
        data_root: str | Path | None = None,
        img_prefix: str | Path = "",
        seg_prefix: str | Path | None = None,
        seg_suffix: str = ".png",
        proposal_file: str | Path | None = None,
        classes: Sequence[str] | None = None,
        filter_empty_gt: bool = True,
        test_mode: bool = False,
        on_bad_box: str = "error",
        min_box_size: float = 0.0,
        check_files: bool = False,
    ) -> None:
        self.data_root = Path(data_root) if data_root is not None else None
        self.ann_file = _join(data_root, ann_file)
        self.img_prefix = _join(data_root, img_prefix) or Path("")
        self.seg_prefix = _join(data_root, seg_prefix)
        self.seg_suffix = seg_suffix
        self.proposal_file = _join(data_root, proposal_file)
        self.requested_classes = list(classes) if classes is not None else None
        self.filter_empty_gt = filter_empty_gt
        self.test_mode = test_mode
        self.report = ProblemReport(self.ann_file, on_bad_box=on_bad_box, min_box_size=min_box_size)

        records = self.load_annotations()
        if check_files:
            for rec in records:
                if not Path(rec["filename"]).is_file():
                    self.report.add(f"image {rec['img_id']}: file {rec['filename']} does not exist")
        self.report.raise_if_any()
        if not test_mode and filter_empty_gt:
            records = [r for r in records if len(r["ann"]["bboxes"]) > 0]
        if not records:
            raise DataError(
                f"{self.ann_file}: no images left"
                + (" after dropping images without objects (filter_empty_gt)" if filter_empty_gt and not test_mode else "")
            )
        self.records = records
        self.proposals = self._load_proposals() if self.proposal_file is not None else None
        self.flags = np.array([r["width"] / r["height"] > 1 for r in records], dtype=np.uint8)
        self.pipeline = build_pipeline(pipeline)

    # -- subclasses ---------------------------------------------------------------------------
    classes: list[str]
    cat_ids: list[int]

    @abstractmethod
    def load_annotations(self) -> list[dict[str, Any]]:
        """Records of every image; problems go to ``self.report`` (raised after loading)."""

    # -- records ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def get_data_info(self, index: int) -> dict[str, Any]:
        """The raw record of image ``index`` (id, file, width, height, annotations); no pixels read."""
        return dict(self.records[index])

    def get_ann_info(self, index: int) -> dict[str, np.ndarray]:
        return self.records[index]["ann"]

    def _load_proposals(self) -> list[np.ndarray]:
        data = read_json(self.proposal_file)
        if isinstance(data, list) and all(isinstance(r, dict) and {"image_id", "boxes"} <= set(r) for r in data):
            # the per-image records `detcore test --out` writes (boxes best first): an RPN's are proposals
            data = {str(r["image_id"]): [[*b, s] for b, s in zip(r["boxes"], r["scores"])] if "scores" in r
                    else r["boxes"] for r in data}
        if not isinstance(data, dict):
            raise DataError(
                f"proposal file {self.proposal_file} must be a JSON object mapping image id -> list of boxes, "
                "or the records list `detcore test --out` writes"
            )
        out, missing = [], []
        for rec in self.records:
            boxes = data.get(str(rec["img_id"]))
            if boxes is None:
                missing.append(rec["img_id"])
                continue
            arr = np.asarray(boxes, dtype=np.float32)
            arr = arr.reshape(0, 4) if arr.size == 0 else arr
            if arr.ndim != 2 or arr.shape[1] not in (4, 5):
                raise DataError(
                    f"proposal file {self.proposal_file}: image {rec['img_id']} has proposals of shape {arr.shape}; "
                    "expected a list of [x1, y1, x2, y2] or [x1, y1, x2, y2, score]"
                )
            out.append(arr)
        if missing:
            raise DataError(f"proposal file {self.proposal_file} has no proposals for image id(s) {missing[:20]}")
        return out

    # -- pipeline -----------------------------------------------------------------------------
    def pre_pipeline(self, index: int) -> dict[str, Any]:
        """The ``results`` dict the pipeline starts from."""
        rec = self.records[index]
        results: dict[str, Any] = {
            "img_info": rec,
            "ann_info": rec["ann"],
            "img_id": rec["img_id"],
            "filename": rec["filename"],
            "ori_filename": rec["file_name"],
            "img_prefix": str(self.img_prefix),
            "seg_prefix": str(self.seg_prefix) if self.seg_prefix is not None else None,
            "bbox_fields": [],
            "mask_fields": [],
            "seg_fields": [],
        }
        if self.proposals is not None:
            results["proposals"] = self.proposals[index]
        return results

    def prepare(self, index: int) -> Any:
        """Run the pipeline on image ``index`` (None if a transform dropped it)."""
        return self.pipeline(self.pre_pipeline(index))

    def __getitem__(self, index: int) -> Any:
        out = self.prepare(index)
        tried = [index]
        while out is None and not self.test_mode and len(tried) <= MAX_RETRIES:
            same_group = np.flatnonzero(self.flags == self.flags[index])
            index = int(np.random.choice(same_group))
            tried.append(index)
            out = self.prepare(index)
        if out is None:
            raise DataError(
                f"{self.ann_file}: the pipeline dropped image(s) {[self.records[i]['img_id'] for i in tried]}; "
                "a transform (e.g. RandomCrop without allow_negative_crop) rejects them"
            )
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(ann_file={str(self.ann_file)!r}, images={len(self)}, "
            f"classes={len(self.classes)}, test_mode={self.test_mode})"
        )
