"""What flows from a dataset to a detector: one `DetSample` per image, a padded `Batch`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from detcore.structures.instances import ImageMeta, Instances

# Value of semantic-map pixels that carry no label (COCO-stuff's "unlabeled"), also used to pad.
SEG_IGNORE = 255


@dataclass
class DetSample:
    """One image after the data pipeline.

    ``image`` is a (3, H, W) tensor; ``gt`` holds the annotated objects (boxes in ``image``
    pixels, labels, optionally masks and keypoints), ``ignored`` the crowd / ignore regions
    (boxes only), ``proposals`` precomputed proposals for Fast R-CNN style models.
    ``gt_sem_seg`` is the semantic map: (h, w) int64 class index per pixel, ``SEG_IGNORE`` where
    unlabeled; (h, w) is the image's size or, after ``SegRescale``, a fixed fraction of it.
    ``extra`` holds anything else a custom transform adds; `collate` gathers it per key.
    """

    image: Tensor
    meta: ImageMeta
    gt: Instances | None = None
    ignored: Instances | None = None
    proposals: Instances | None = None
    gt_sem_seg: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    """N images padded to one (N, 3, H, W) tensor, with per-image metadata and targets.

    ``gt_sem_seg`` is (N, h, w) int64, each map padded bottom / right with ``SEG_IGNORE`` like
    its image (see `collate`). ``extra`` maps each key of the samples' ``extra`` to a list with
    one value per image (None for an image without that key).
    """

    images: Tensor
    metas: list[ImageMeta]
    gt: list[Instances] | None = None
    ignored: list[Instances] | None = None
    proposals: list[Instances] | None = None
    gt_sem_seg: Tensor | None = None
    extra: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.metas)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """The batch on ``device``: images, every ``Instances`` field (boxes, masks, keypoints, ...),
        the semantic maps, and the tensors and ``Instances`` held in ``extra``."""
        def move(value: Any) -> Any:
            if isinstance(value, (Tensor, Instances)):
                return value.to(device, non_blocking=non_blocking)
            return value

        def move_list(items: list[Instances] | None) -> list[Instances] | None:
            return None if items is None else [move(it) for it in items]

        return Batch(
            images=move(self.images),
            metas=self.metas,
            gt=move_list(self.gt),
            ignored=move_list(self.ignored),
            proposals=move_list(self.proposals),
            gt_sem_seg=move(self.gt_sem_seg),
            extra={key: [move(v) for v in values] for key, values in self.extra.items()},
        )


def collate(samples: list[DetSample], size_divisor: int = 32, pad_value: float = 0.0) -> Batch:
    """Pad images of different sizes to a common size (a multiple of ``size_divisor``).

    Instances (with all their fields, keypoints included) stay per image; an image without
    ``gt`` / ``ignored`` / ``proposals`` gets empty ones when another image has them. Semantic maps
    are padded with ``SEG_IGNORE`` to the batch's pad shape scaled by their ratio to their image
    (a ``SegRescale``'d map of 1/8 the image is padded to 1/8 the batch shape) and stacked; every
    sample must then have one. ``extra`` values are gathered per key into lists, not stacked.
    """
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

    extra_keys = list(dict.fromkeys(k for s in samples for k in s.extra))
    return Batch(
        images=images,
        metas=metas,
        gt=gather("gt"),
        ignored=gather("ignored"),
        proposals=gather("proposals"),
        gt_sem_seg=collate_seg_maps(samples, (max_h, max_w)),
        extra={key: [s.extra.get(key) for s in samples] for key in extra_keys},
    )


def collate_seg_maps(samples: list[DetSample], pad_shape: tuple[int, int]) -> Tensor | None:
    """(N, h, w) int64 semantic maps padded with ``SEG_IGNORE``; None when no sample has one."""
    maps = [s.gt_sem_seg for s in samples]
    if all(m is None for m in maps):
        return None
    missing = [s.meta.file_name or f"#{i}" for i, s in enumerate(samples) if s.gt_sem_seg is None]
    if missing:
        raise ValueError(
            f"collate: images {missing} have no semantic map (gt_sem_seg) while others of the batch do; "
            "load it for every image (LoadAnnotations(with_seg=True)) or for none"
        )
    target_h = target_w = 0
    for s, seg in zip(samples, maps):
        img_h, img_w = s.image.shape[-2:]
        seg_h, seg_w = seg.shape[-2:]
        # scale the batch pad shape by the map's ratio to its image (1 unless SegRescale'd)
        target_h = max(target_h, seg_h, math.ceil(pad_shape[0] * seg_h / img_h - 1e-6))
        target_w = max(target_w, seg_w, math.ceil(pad_shape[1] * seg_w / img_w - 1e-6))
    padded = [
        F.pad(seg.reshape(seg.shape[-2:]).long(), (0, target_w - seg.shape[-1], 0, target_h - seg.shape[-2]),
              value=SEG_IGNORE)
        for seg in maps
    ]
    return torch.stack(padded)
