"""Associative embedding loss (Newell et al., "Associative Embedding"), as CornerNet (Law and Deng) pairs
corners: pull the two corner embeddings of an object to their mean, push the means of different objects at
least a margin of 1 apart."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pull_push_single(tl_emb: Tensor, br_emb: Tensor, pairs: Sequence[tuple[tuple[int, int], tuple[int, int]]],
                     margin: float = 1.0) -> tuple[Tensor, Tensor]:
    """(pull, push) of one image: ``tl_emb`` / ``br_emb`` (M, H, W); ``pairs`` the ((y, x) top-left, (y, x)
    bottom-right) feature cells of each object. Pull averages over objects, push over ordered object pairs."""
    zero = tl_emb.sum() * 0.0
    if len(pairs) == 0:
        return zero, zero
    tl = torch.stack([tl_emb[:, ty, tx] for (ty, tx), _ in pairs])  # (N, M)
    br = torch.stack([br_emb[:, by, bx] for _, (by, bx) in pairs])
    mean = (tl + br) / 2
    num = len(pairs)
    pull = ((tl - mean).pow(2) + (br - mean).pow(2)).sum() / num
    if num < 2:
        return pull, zero
    gaps = (mean[:, None, :] - mean[None, :, :]).sum(-1).abs()
    off_diagonal = 1 - torch.eye(num, dtype=mean.dtype, device=mean.device)
    push = F.relu(off_diagonal * (margin - gaps)).sum() / (num * (num - 1))
    return pull, push


class AssociativeEmbeddingLoss(nn.Module):
    """``loss(tl_emb, br_emb, pairs)`` -> (pull, push) summed over the images of the batch, weighted."""

    def __init__(self, pull_weight: float = 0.25, push_weight: float = 0.25) -> None:
        super().__init__()
        self.pull_weight = pull_weight
        self.push_weight = push_weight

    def forward(self, tl_emb: Tensor, br_emb: Tensor,
                pairs: Sequence[Sequence[tuple[tuple[int, int], tuple[int, int]]]]) -> tuple[Tensor, Tensor]:
        pull_total = push_total = tl_emb.sum() * 0.0
        for i in range(tl_emb.shape[0]):
            pull, push = pull_push_single(tl_emb[i], br_emb[i], pairs[i])
            pull_total = pull_total + self.pull_weight * pull
            push_total = push_total + self.push_weight * push
        return pull_total, push_total
