"""Abstract bases of the training building blocks: losses, assigners, samplers, coders, priors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from detcore.structures import Instances


class Loss(nn.Module, ABC):
    """``loss(pred, target, weight=None, avg_factor=None, reduction_override=None)``.

    ``weight`` scales element-wise losses; ``avg_factor`` replaces the element count
    in a "mean" reduction (e.g. the number of positive anchors); ``loss_weight`` scales
    the result.
    """

    @abstractmethod
    def forward(
        self,
        pred: Tensor,
        target: Tensor,
        weight: Tensor | None = None,
        avg_factor: float | Tensor | None = None,
        reduction_override: str | None = None,
    ) -> Tensor: ...


@dataclass
class AssignResult:
    """Which ground truth each prior is assigned to.

    ``gt_inds[i]`` is 0 for negative, -1 for ignored, ``j + 1`` for ground truth ``j``;
    ``labels[i]`` is the assigned class or -1; ``max_overlaps[i]`` the matching quality.
    """

    num_gts: int
    gt_inds: Tensor
    max_overlaps: Tensor
    labels: Tensor

    @property
    def num_priors(self) -> int:
        return int(self.gt_inds.numel())

    def add_gt_as_proposals(self, gt_labels: Tensor) -> None:
        """Prepend the ground truths themselves as perfectly matching proposals."""
        n = len(gt_labels)
        self_inds = torch.arange(1, n + 1, dtype=self.gt_inds.dtype, device=self.gt_inds.device)
        self.gt_inds = torch.cat([self_inds, self.gt_inds])
        self.max_overlaps = torch.cat([self.max_overlaps.new_ones(n), self.max_overlaps])
        self.labels = torch.cat([gt_labels.to(self.labels.dtype), self.labels])


@dataclass
class SamplingResult:
    """Positive and negative priors chosen for the loss, with their targets."""

    pos_inds: Tensor
    neg_inds: Tensor
    pos_priors: Tensor
    neg_priors: Tensor
    pos_gt_boxes: Tensor
    pos_gt_labels: Tensor
    pos_assigned_gt_inds: Tensor
    pos_is_gt: Tensor

    @property
    def priors(self) -> Tensor:
        return torch.cat([self.pos_priors, self.neg_priors])


class Assigner(ABC):
    """Assigns each candidate prediction to a ground truth, to background or to ignore.

    ``pred`` has one row per candidate. Every caller sets ``priors`` (anchors or proposals as
    (N, 4) boxes, points as (N, 2+)); a prior from a multi-level grid also has ``level_ids``
    (N,) long. Prediction-aware methods (PAA, Hungarian matching, FreeAnchor, ...) read what
    the head adds: ``boxes`` (decoded predicted boxes) and ``scores`` (N, C class logits or
    probabilities), or any other named field. ``pred.image_size`` is the unpadded image
    (height, width) when the caller knows it. ``ignored`` holds regions to ignore (crowds).
    """

    @abstractmethod
    def assign(self, pred: Instances, gt: Instances, ignored: Instances | None = None) -> AssignResult: ...


class Sampler(ABC):
    """Chooses which assigned candidates contribute to the loss (e.g. 512 RoIs, 25% positive).

    ``pred`` is the assigner's input (``priors`` at least); ``context`` carries what a sampler
    needs from its caller (OHEM: the per-candidate loss function of the RoI head).
    """

    @abstractmethod
    def sample(
        self, assign_result: AssignResult, pred: Instances, gt: Instances, **context: object
    ) -> SamplingResult: ...


class BoxCoder(ABC):
    """Encodes target boxes relative to priors as regression targets, and decodes back."""

    @abstractmethod
    def encode(self, priors: Tensor, gt_boxes: Tensor) -> Tensor: ...

    @abstractmethod
    def decode(
        self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int] | None = None
    ) -> Tensor: ...


class PriorGenerator(ABC):
    """Anchors or points for every location of every feature level."""

    @property
    @abstractmethod
    def num_levels(self) -> int: ...

    @property
    @abstractmethod
    def num_base_priors(self) -> list[int]:
        """Priors per location at each level (e.g. 9 anchors for RetinaNet)."""

    @abstractmethod
    def grid_priors(
        self,
        featmap_sizes: Sequence[tuple[int, int]],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> list[Tensor]: ...
