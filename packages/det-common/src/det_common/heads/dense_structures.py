"""What flows between the steps of a dense head: its outputs, its priors and its training targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import torch
from torch import Tensor


def flatten_levels(maps: Sequence[Tensor], channels: int) -> Tensor:
    """Per-level maps (N, A*channels, H, W) -> (N, sum of H*W*A, channels), priors in (level, y, x, anchor) order.

    ``A`` may differ between levels (SSD); the order matches the prior generators' ``grid_priors``.
    """
    num_images = maps[0].shape[0]
    return torch.cat([m.permute(0, 2, 3, 1).reshape(num_images, -1, channels) for m in maps], dim=1)


@dataclass
class DenseOutputs:
    """Raw per-level outputs of a dense head's ``forward``.

    ``cls_scores``: (N, A*C, H, W) logits; ``bbox_preds``: (N, A*box_dim, H, W) deltas or distances;
    ``score_factors``: optional (N, A, H, W) logits multiplied into the class scores at test time
    (FCOS centerness, IoU branches); ``extras``: any other per-level maps a head's loss needs
    (refined boxes, ...), by name.
    """

    cls_scores: list[Tensor]
    bbox_preds: list[Tensor]
    score_factors: list[Tensor] | None = None
    extras: dict[str, list[Tensor]] = field(default_factory=dict)

    @property
    def num_levels(self) -> int:
        return len(self.cls_scores)

    @property
    def featmap_sizes(self) -> list[tuple[int, int]]:
        return [(int(c.shape[-2]), int(c.shape[-1])) for c in self.cls_scores]

    def float(self) -> "DenseOutputs":
        """The same outputs in float32 (post-processing runs in fp32 after a reduced-precision forward)."""

        def cast(maps: list[Tensor]) -> list[Tensor]:
            return [m.float() for m in maps]

        return DenseOutputs(
            cast(self.cls_scores),
            cast(self.bbox_preds),
            None if self.score_factors is None else cast(self.score_factors),
            {name: cast(maps) for name, maps in self.extras.items()},
        )

    def to_tuple(self) -> tuple[list[Tensor], ...]:
        """(cls_scores, bbox_preds[, score_factors], *extras): plain lists of tensors for export and tracing."""
        out: tuple[list[Tensor], ...] = (self.cls_scores, self.bbox_preds)
        if self.score_factors is not None:
            out += (self.score_factors,)
        return out + tuple(self.extras.values())


@dataclass
class DensePriors:
    """The priors (anchors (P, 4) or points (P, 2)) of every level of the feature maps of one batch."""

    per_level: list[Tensor]

    @cached_property
    def flat(self) -> Tensor:
        """(P, 4) or (P, 2): every level's priors, level after level."""
        return torch.cat(self.per_level)

    @property
    def num_per_level(self) -> list[int]:
        return [int(p.shape[0]) for p in self.per_level]

    @cached_property
    def level_ids(self) -> Tensor:
        """(P,) level index of every prior."""
        device = self.per_level[0].device
        return torch.repeat_interleave(
            torch.arange(len(self.per_level), device=device), torch.as_tensor(self.num_per_level, device=device)
        )


@dataclass
class DenseTargets:
    """Training targets of every prior of every level, for one image or (``cat``) a whole batch.

    ``labels``: class per prior, ``num_classes`` for background; ``label_weights``, ``bbox_targets``
    and ``bbox_weights`` (P, box_dim) weigh and supervise it; ``assigned_gt_inds`` follows
    ``AssignResult``: j + 1 for ground truth j, 0 for background, -1 for ignored or unused priors;
    ``pos_inds`` / ``neg_inds`` index the priors (over the whole batch after ``cat``); ``avg_factor``
    is what the losses are averaged by; ``extras`` holds any other per-prior target (centerness, ...).
    """

    labels: Tensor
    label_weights: Tensor
    bbox_targets: Tensor
    bbox_weights: Tensor
    assigned_gt_inds: Tensor
    pos_inds: Tensor
    neg_inds: Tensor
    avg_factor: float = 1.0
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def num_pos(self) -> int:
        return int(self.pos_inds.numel())

    @classmethod
    def cat(cls, per_image: Sequence[DenseTargets]) -> DenseTargets:
        """The targets of a batch: per-prior fields concatenated image after image, indices offset,
        ``avg_factor`` summed."""
        offsets = [0]
        for targets in per_image[:-1]:
            offsets.append(offsets[-1] + int(targets.labels.shape[0]))
        extras = {name: torch.cat([t.extras[name] for t in per_image]) for name in per_image[0].extras}
        return cls(
            labels=torch.cat([t.labels for t in per_image]),
            label_weights=torch.cat([t.label_weights for t in per_image]),
            bbox_targets=torch.cat([t.bbox_targets for t in per_image]),
            bbox_weights=torch.cat([t.bbox_weights for t in per_image]),
            assigned_gt_inds=torch.cat([t.assigned_gt_inds for t in per_image]),
            pos_inds=torch.cat([t.pos_inds + off for t, off in zip(per_image, offsets)]),
            neg_inds=torch.cat([t.neg_inds + off for t, off in zip(per_image, offsets)]),
            avg_factor=float(sum(t.avg_factor for t in per_image)),
            extras=extras,
        )
