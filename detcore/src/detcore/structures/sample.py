"""What flows from a dataset to a detector: one `DetSample` per image, a padded `Batch`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from detcore.structures.instances import ImageMeta, Instances


@dataclass
class DetSample:
    """One image after the data pipeline.

    ``image`` is a (3, H, W) tensor; ``gt`` holds the annotated objects (boxes in ``image``
    pixels, labels, optionally masks), ``ignored`` the crowd / ignore regions (boxes only),
    ``proposals`` precomputed proposals for Fast R-CNN style models.
    """

    image: Tensor
    meta: ImageMeta
    gt: Instances | None = None
    ignored: Instances | None = None
    proposals: Instances | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """N images padded to one (N, 3, H, W) tensor, with per-image metadata and targets."""

    images: Tensor
    metas: list[ImageMeta]
    gt: list[Instances] | None = None
    ignored: list[Instances] | None = None
    proposals: list[Instances] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.metas)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        def move(items: list[Instances] | None) -> list[Instances] | None:
            return None if items is None else [it.to(device) for it in items]

        return Batch(
            images=self.images.to(device, non_blocking=non_blocking),
            metas=self.metas,
            gt=move(self.gt),
            ignored=move(self.ignored),
            proposals=move(self.proposals),
            extra=self.extra,
        )


def collate(samples: list[DetSample], size_divisor: int = 32, pad_value: float = 0.0) -> Batch:
    """Pad images of different sizes to a common size (a multiple of ``size_divisor``)."""
    if not samples:
        raise ValueError("collate got an empty list of samples")
    max_h = max(s.image.shape[-2] for s in samples)
    max_w = max(s.image.shape[-1] for s in samples)
    if size_divisor > 1:
        max_h = -(-max_h // size_divisor) * size_divisor
        max_w = -(-max_w // size_divisor) * size_divisor
    first = samples[0].image
    images = first.new_full((len(samples), first.shape[0], max_h, max_w), pad_value)
    metas = []
    for i, s in enumerate(samples):
        h, w = s.image.shape[-2:]
        images[i, :, :h, :w] = s.image
        metas.append(s.meta.replace(pad_shape=(max_h, max_w)))

    def gather(name: str) -> list[Instances] | None:
        values = [getattr(s, name) for s in samples]
        return None if all(v is None for v in values) else [
            v if v is not None else Instances.empty() for v in values
        ]

    return Batch(
        images=images,
        metas=metas,
        gt=gather("gt"),
        ignored=gather("ignored"),
        proposals=gather("proposals"),
    )
