"""What an evaluation pass writes besides metrics: per-image prediction records (``detcore test --out``)
and drawings of the predictions (``--show-dir``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from detcore.engine.dist import all_gather_object
from detcore.structures import Batch, ImageMeta, Instances

RECORD_FIELDS = ("boxes", "scores", "labels")


def prediction_record(meta: ImageMeta, inst: Instances) -> dict[str, Any]:
    """One image's predictions as JSON-ready lists, best score first.

    A list of these records is also a valid dataset ``proposal_file``: an RPN's records are
    Fast R-CNN's proposals.
    """
    if inst.has("scores") and len(inst):
        inst = inst[torch.argsort(inst.scores, descending=True, stable=True)]
    arrays = inst.numpy()
    return {
        "image_id": meta.image_id,
        "file_name": meta.file_name,
        **{k: arrays[k].tolist() for k in RECORD_FIELDS if k in arrays},
    }


class PredictionRecords:
    """Evaluation sink collecting :func:`prediction_record` of every image on this rank."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, batch: Batch, predictions: Sequence[Instances]) -> None:
        self.records.extend(prediction_record(meta, inst) for meta, inst in zip(batch.metas, predictions))

    def gathered(self) -> list[dict[str, Any]]:
        """Every rank's records, rank by rank (every rank must call this)."""
        return [r for part in all_gather_object(self.records) for r in part]


class PredictionDrawer:
    """Evaluation sink drawing each image's predictions to ``out_dir/<image file stem>.png``.

    Images are read again from ``meta.file_name`` (original pixels, where predictions are).
    """

    def __init__(
        self, out_dir: str | os.PathLike[str], classes: Sequence[str] | None = None, score_thr: float = 0.3
    ) -> None:
        self.out_dir = Path(out_dir)
        self.classes = list(classes) if classes else None
        self.score_thr = score_thr
        self.written: list[Path] = []

    def __call__(self, batch: Batch, predictions: Sequence[Instances]) -> None:
        from detcore.apis.inference import show_result
        from detcore.errors import DataError

        for meta, inst in zip(batch.metas, predictions):
            if not meta.file_name:
                raise DataError(f"--show-dir: image {meta.image_id} has no file name to draw on")
            out_file = self.out_dir / f"{Path(meta.file_name).stem}.png"
            show_result(meta.file_name, inst, self.classes, out_file=out_file, score_thr=self.score_thr)
            self.written.append(out_file)
