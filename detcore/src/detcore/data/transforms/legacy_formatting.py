"""MMDetection v2's formatting steps (``DefaultFormatBundle``, ``Collect``, ``ImageToTensor``, ``ToTensor``,
``Transpose``, ``ToDataContainer``, ``WrapFieldsToLists``), accepted so pipelines ported from MMDetection
configs run unchanged. detcore's pipelines end with one ``PackDetInputs``; each of these names says so once
(a one-line ``FutureWarning``) and maps onto it: the bundle and ``Collect`` pack, the others pass through
(detcore's images are already (3, H, W) tensors)."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from detcore.data.transforms.formatting import PackDetInputs
from detcore.interfaces.data import Transform
from detcore.structures import DetSample

_warned: set[str] = set()
#: MMDetection v2 result keys -> detcore's; ``Collect`` drops those not in its ``keys``
ANNOTATION_KEYS = {"gt_bboxes": "gt_bboxes", "gt_labels": "gt_labels", "gt_masks": "gt_masks",
                   "gt_bboxes_ignore": "gt_bboxes_ignore", "gt_semantic_seg": "gt_seg_map", "proposals": "proposals"}


def _note(name: str, instead: str) -> None:
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"pipeline step {name} is MMDetection v2's; detcore {instead} (end pipelines with "
                      "PackDetInputs instead)", FutureWarning, stacklevel=3)


class DefaultFormatBundle(Transform):
    """Packs like ``PackDetInputs`` (MMDetection v2: to tensors + DataContainers)."""

    def __init__(self, **_: Any) -> None:
        _note("DefaultFormatBundle", "packs the sample here as PackDetInputs does")
        self.pack = PackDetInputs()

    def __call__(self, results: Any) -> Any:
        return results if isinstance(results, DetSample) else self.pack(results)


class Collect(Transform):
    """Packs ``keys`` (annotation keys not listed are left out) and ``meta_keys`` like ``PackDetInputs``;
    a sample already packed by ``DefaultFormatBundle`` passes through."""

    def __init__(self, keys: Sequence[str] = ("img",), meta_keys: Sequence[str] = ()) -> None:
        _note("Collect", "packs the sample here as PackDetInputs does")
        self.keys = tuple(keys)
        self.pack = PackDetInputs(meta_keys=[k for k in meta_keys if k not in ("filename", "ori_shape", "img_shape",
                                                                            "pad_shape", "scale_factor", "flip",
                                                                            "flip_direction", "img_norm_cfg")])

    def __call__(self, results: Any) -> Any:
        if isinstance(results, DetSample):
            return results
        dropped = {ours for theirs, ours in ANNOTATION_KEYS.items() if theirs not in self.keys}
        return self.pack({k: v for k, v in results.items() if k not in dropped})


class _PassThrough(Transform):
    def __init__(self, **kwargs: Any) -> None:
        _note(type(self).__name__, "needs no such step")
        self.kwargs = kwargs

    def __call__(self, results: Any) -> Any:
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kwargs}) [no-op in detcore]"


class ImageToTensor(_PassThrough):
    """No-op: images are (3, H, W) tensors from loading on."""


class ToTensor(_PassThrough):
    """No-op: ``PackDetInputs`` makes every field a tensor."""


class Transpose(_PassThrough):
    """No-op: images are channel-first already."""


class ToDataContainer(_PassThrough):
    """No-op: detcore has no DataContainer; collate pads and batches."""


class WrapFieldsToLists(_PassThrough):
    """No-op: test-time views are lists already (``MultiScaleFlipAug``)."""
