"""Typed per-image containers: `Instances` (boxes, labels, scores, masks, ...) and `ImageMeta`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import torch
from torch import Tensor

# Fields every detector understands; others (e.g. "centerness", "iou") are allowed too.
KNOWN_FIELDS = ("boxes", "labels", "scores", "masks", "keypoints", "areas", "ids")


class Instances:
    """A set of N objects in one image: named per-object fields that all have length N.

    Boxes are ``(N, 4)`` float ``x1, y1, x2, y2`` in pixels of the image they refer to,
    labels ``(N,)`` int64 contiguous class indices, scores ``(N,)`` float, masks ``(N, H, W)``
    bool, keypoints ``(N, K, 3)`` (x, y, visibility). Indexing with an int, slice, index
    tensor or boolean tensor selects objects from every field at once.
    """

    def __init__(self, image_size: tuple[int, int] | None = None, **fields: Any) -> None:
        self._image_size = tuple(image_size) if image_size is not None else None
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    # -- fields ---------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int] | None:
        """(height, width) of the image the instances live in, if known."""
        return self._image_size

    def set(self, name: str, value: Any) -> None:
        """Add or replace a field, checking its length against the existing fields."""
        if self._fields:
            n = len(self)
            if len(value) != n:
                raise ValueError(
                    f"Instances field {name!r} has length {len(value)}, but the other fields "
                    f"({', '.join(self._fields)}) have length {n}"
                )
        self._fields[name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self._fields.get(name, default)

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def fields(self) -> dict[str, Any]:
        """The fields as a (shallow-copied) dict."""
        return dict(self._fields)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        fields = self.__dict__.get("_fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(
            f"Instances has no field {name!r}; it has: {', '.join(fields) or '(none)'}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    # -- container protocol ---------------------------------------------------------------
    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        return 0

    def __getitem__(self, item: int | slice | Tensor) -> "Instances":
        if isinstance(item, int):
            n = len(self)
            if item >= n or item < -n:
                raise IndexError(f"Instances index {item} out of range for {n} objects")
            item = slice(item, None if item == -1 else item + 1)
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            if isinstance(value, Tensor):
                out._fields[name] = value[item]
            elif isinstance(item, Tensor):
                idx = item.nonzero().flatten() if item.dtype == torch.bool else item
                out._fields[name] = [value[int(i)] for i in idx]
            else:
                out._fields[name] = value[item]
        return out

    def __iter__(self) -> Iterator["Instances"]:
        for i in range(len(self)):
            yield self[i]

    def to(self, *args: Any, **kwargs: Any) -> "Instances":
        """Move every tensor field (e.g. ``.to("cuda")``); non-tensor fields are kept."""
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            out._fields[name] = value.to(*args, **kwargs) if isinstance(value, Tensor) else value
        return out

    def numpy(self) -> dict[str, Any]:
        """The fields as numpy arrays (for metrics and JSON export)."""
        return {
            k: v.detach().cpu().numpy() if isinstance(v, Tensor) else v
            for k, v in self._fields.items()
        }

    @staticmethod
    def cat(items: list["Instances"]) -> "Instances":
        """Concatenate instances of the same image (same fields)."""
        if not items:
            return Instances()
        names = list(items[0]._fields)
        for other in items[1:]:
            if list(other._fields) != names:
                raise ValueError(
                    f"Instances.cat needs the same fields; got {names} and {list(other._fields)}"
                )
        out = Instances(items[0]._image_size)
        for name in names:
            values = [it._fields[name] for it in items]
            if isinstance(values[0], Tensor):
                out._fields[name] = torch.cat(values, dim=0)
            else:
                out._fields[name] = [v for vs in values for v in vs]
        return out

    @staticmethod
    def empty(image_size: tuple[int, int] | None = None, device: Any = "cpu") -> "Instances":
        """No objects: zero-length boxes, labels and scores."""
        return Instances(
            image_size,
            boxes=torch.zeros((0, 4), device=device),
            labels=torch.zeros((0,), dtype=torch.int64, device=device),
            scores=torch.zeros((0,), device=device),
        )

    def __repr__(self) -> str:
        parts = []
        for name, value in self._fields.items():
            desc = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, Tensor) else type(value).__name__
            parts.append(f"{name}: {desc}")
        return f"Instances(num={len(self)}, image_size={self._image_size}, {', '.join(parts)})"


@dataclass
class ImageMeta:
    """What a detector needs to know about one image besides its pixels.

    Shapes are (height, width). ``scale_factor`` is (w_scale, h_scale) from the original
    image to ``img_shape``; predictions are mapped back to original pixels with it.
    """

    ori_shape: tuple[int, int]
    img_shape: tuple[int, int]
    pad_shape: tuple[int, int]
    scale_factor: tuple[float, float] = (1.0, 1.0)
    flip: bool = False
    flip_direction: str | None = None
    file_name: str | None = None
    image_id: int | str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> "ImageMeta":
        return replace(self, **changes)
