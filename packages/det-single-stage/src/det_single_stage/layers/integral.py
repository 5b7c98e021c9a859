"""The integral over a discretized box-side distribution (Li et al. 2020, "Generalized Focal Loss")."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Integral(nn.Module):
    """Expected value of each of the 4 side distances: softmax over ``reg_max + 1`` bins at 0, 1, ..., ``reg_max``
    (in strides) times the bin positions. The positions are the ``project`` buffer, as MMDetection stores it."""

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.register_buffer("project", torch.linspace(0, reg_max, reg_max + 1))

    def forward(self, x: Tensor) -> Tensor:
        """(N, 4 * (reg_max + 1)) logits -> (N, 4) expected distances."""
        probs = torch.softmax(x.reshape(-1, self.reg_max + 1), dim=1)
        return (probs @ self.project.to(probs.dtype)).reshape(-1, 4)
