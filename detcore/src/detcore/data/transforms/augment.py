"""Test-time augmentation (`003` §4.1.4): one pipeline run per scale and flip."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from detcore.data.transforms.compose import build_pipeline
from detcore.data.transforms.geometric import FLIP_DIRECTIONS, _as_scales
from detcore.interfaces.data import Transform
from detcore.structures import DetSample


class MultiScaleFlipAug(Transform):
    """Run ``transforms`` once per ``scale`` x flip and return the list of ``DetSample`` views.

    ``scale`` (``img_scale`` in MMDetection) is one (long, short) pair or a list; with ``flip``
    each scale is also run flipped in every ``flip_direction``. Without a scale (flip only, e.g. CornerNet's
    flip test, whose pipeline pads instead of resizing) no scale is imposed. The inner pipeline reads
    ``results["scale"]`` / ``["flip"]`` / ``["flip_direction"]`` (``Resize`` and ``RandomFlip`` obey
    them) and must end with ``PackDetInputs``. The data loader's collate turns a batch of such
    lists into one ``Batch`` per view, the input of ``Detector.predict_tta``.
    """

    def __init__(
        self,
        transforms: Sequence[Mapping[str, Any] | Any],
        scale: Any = None,
        flip: bool = False,
        flip_direction: str | Sequence[str] = "horizontal",
        img_scale: Any = None,
    ) -> None:
        if scale is not None and img_scale is not None:
            raise ValueError("MultiScaleFlipAug: give one of scale or img_scale, not both")
        if scale is None and img_scale is None and not flip:
            raise ValueError("MultiScaleFlipAug: give scale (or img_scale), or flip = true for a flip-only test")
        self.scales: list[tuple[int, int] | None] = list(_as_scales(scale if scale is not None else img_scale))
        if not self.scales:
            self.scales = [None]
        self.flip = flip
        self.flip_directions = [flip_direction] if isinstance(flip_direction, str) else list(flip_direction)
        for d in self.flip_directions:
            if d not in FLIP_DIRECTIONS:
                raise ValueError(f"MultiScaleFlipAug: unknown flip direction {d!r}; use one of {FLIP_DIRECTIONS}")
        self.pipeline = build_pipeline(transforms)

    def views(self) -> list[tuple[tuple[int, int] | None, bool, str | None]]:
        """(scale, flip, direction) of every view, in output order."""
        flips: list[tuple[bool, str | None]] = [(False, None)]
        if self.flip:
            flips += [(True, d) for d in self.flip_directions]
        return [(s, f, d) for s in self.scales for f, d in flips]

    def __call__(self, results: dict[str, Any]) -> list[DetSample]:
        outputs = []
        for idx, (scale, flip, direction) in enumerate(self.views()):
            view = dict(results)
            view.update(flip=flip, flip_direction=direction)
            if scale is not None:
                view.update(scale=scale, scale_idx=self.scales.index(scale))
            out = self.pipeline(view)
            if not isinstance(out, DetSample):
                raise TypeError(
                    f"MultiScaleFlipAug: view {idx} produced {type(out).__name__}; its transforms must end with "
                    "PackDetInputs"
                )
            outputs.append(out)
        return outputs

    def __repr__(self) -> str:
        return f"MultiScaleFlipAug(scales={self.scales}, flip={self.flip}, pipeline={self.pipeline})"
