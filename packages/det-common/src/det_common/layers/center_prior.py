"""Learnable, category-specific center prior of AutoAssign (Zhu et al. 2020, "AutoAssign: Differentiable Label
Assignment for Dense Object Detection"): how much each location inside a box may count as foreground, by its
offset from the box center in strides, through a Gaussian whose mean and spread each class learns."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CenterPrior(nn.Module):
    """Per class a Gaussian over (dx, dy) offsets from the box center in units of the point's stride: ``mean``
    (C, 2) starts at 0 and ``sigma`` (C, 2) at 1.

    ``forward`` gives the (P, G) prior of every point for every box, zero outside the box. With ``force_topk``
    a box that holds no point takes its ``topk`` points of highest prior instead (very small boxes).
    """

    def __init__(self, num_classes: int, force_topk: bool = False, topk: int = 9) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(num_classes, 2))
        self.sigma = nn.Parameter(torch.ones(num_classes, 2))
        self.force_topk = force_topk
        self.topk = topk

    def forward(self, points: Tensor, strides: Tensor, boxes: Tensor, labels: Tensor,
                inside: Tensor) -> tuple[Tensor, Tensor]:
        """(prior (P, G), inside (P, G)) for points (P, 2) with their strides (P,), boxes (G, 4) of class
        ``labels`` (G,) and ``inside`` (P, G): whether each point lies in each box (widened by ``force_topk``)."""
        if len(boxes) == 0:
            return points.new_zeros(points.shape[0], 0), inside
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        offsets = (points[:, None, :] - centers[None]) / strides[:, None, None].to(points.dtype)
        distance = (offsets - self.mean[labels][None]) ** 2
        prior = torch.exp(-distance / (2 * self.sigma[labels][None] ** 2)).prod(dim=-1)
        if self.force_topk:
            empty = (inside.sum(dim=0) == 0).nonzero().flatten()
            if empty.numel() > 0:
                inside = inside.clone()
                best = prior[:, empty].topk(min(self.topk, prior.shape[0]), dim=0).indices
                inside[:, empty] = inside[:, empty].scatter(0, best, True)
        return prior.masked_fill(~inside, 0.0), inside
