"""Collecting every problem of an annotation file before training starts, then reporting them at once."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from detcore.errors import DataError

BAD_BOX_POLICIES = ("error", "skip", "clip")
# Boxes may overshoot the image by this many pixels (rounding in annotation tools); they are clipped.
BORDER_TOLERANCE = 1.0
MAX_LISTED = 50


def read_json(path: str | Path) -> Any:
    """Parse a JSON file, turning a missing file or a syntax error into a ``DataError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist; check ann_file and data_root")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"annotation file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"annotation file {path} is not UTF-8 text ({exc}); is it really a JSON file?") from exc


class ProblemReport:
    """Accumulates problems of one annotation source; ``raise_if_any`` reports them all together.

    ``on_bad_box`` decides what happens to a box outside the image or without area:
    "error" reports it, "skip" drops the object, "clip" clips it to the image (dropping it if
    nothing is left); dropped boxes are counted and announced with one warning.
    """

    def __init__(self, source: str | Path, on_bad_box: str = "error", min_box_size: float = 0.0) -> None:
        if on_bad_box not in BAD_BOX_POLICIES:
            raise ValueError(f"on_bad_box must be one of {BAD_BOX_POLICIES}, got {on_bad_box!r}")
        self.source = str(source)
        self.on_bad_box = on_bad_box
        self.min_box_size = min_box_size
        self.errors: list[str] = []
        self.skipped_bad = 0
        self.clipped_bad = 0
        self.skipped_small = 0

    def add(self, message: str) -> None:
        self.errors.append(message)

    def check_box(
        self, box: list[float], width: float, height: float, where: str
    ) -> list[float] | None:
        """Validate one XYXY box of an image of ``width`` x ``height``; the box to keep, or None."""
        x1, y1, x2, y2 = box
        if not x2 > x1 or not y2 > y1:
            return self._bad(f"{where}: box {box} has zero area (x2 <= x1 or y2 <= y1)", None)
        tol = BORDER_TOLERANCE
        clipped = [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width),
                   min(max(y2, 0.0), height)]
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                return self._bad(f"{where}: box {box} lies outside the image ({width}x{height})", None)
            return self._bad(f"{where}: box {box} extends outside the image ({width}x{height})", clipped)
        if clipped[2] - clipped[0] < self.min_box_size or clipped[3] - clipped[1] < self.min_box_size:
            self.skipped_small += 1
            return None
        return clipped

    def _bad(self, message: str, clipped: list[float] | None) -> list[float] | None:
        if self.on_bad_box == "error":
            self.add(message + "; fix it or set on_bad_box='skip' / 'clip'")
            return None
        if self.on_bad_box == "clip" and clipped is not None:
            self.clipped_bad += 1
            return clipped
        self.skipped_bad += 1
        return None

    def raise_if_any(self) -> None:
        """Raise one ``DataError`` listing every problem; warn about skipped / clipped boxes."""
        if self.errors:
            listed = "\n".join(f"  - {e}" for e in self.errors[:MAX_LISTED])
            more = len(self.errors) - MAX_LISTED
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise DataError(f"{self.source}: {len(self.errors)} problem(s) found:\n{listed}{tail}")
        if self.skipped_bad or self.clipped_bad:
            warnings.warn(
                f"{self.source}: skipped {self.skipped_bad} and clipped {self.clipped_bad} box(es) outside the "
                f"image or without area (on_bad_box={self.on_bad_box!r})",
                stacklevel=3,
            )
