"""A learnable scalar multiplier (FCOS / ATSS per-level regression scales)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Scale(nn.Module):
    """Multiplies its input by a learnable scalar ``scale`` (parameter name as in MMDetection)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale
