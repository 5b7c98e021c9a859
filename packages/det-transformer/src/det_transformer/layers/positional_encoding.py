"""Positional encodings of a 2-D feature map: fixed sine / cosine (DETR) and learned row / column embeddings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinePositionalEncoding(nn.Module):
    """Sine / cosine of the row and column positions at ``num_feats`` frequencies each (the Transformer's
    encoding in 2-D, as in DETR, Carion et al. 2020): (B, 2 * num_feats, H, W), rows first.

    ``mask`` (B, H, W) is True on padding; positions count valid pixels only. Without a mask every position of
    ``like`` (B, C, H, W) is valid. ``normalize`` rescales positions to (0, ``scale``] per image.
    """

    def __init__(self, num_feats: int, temperature: float = 10000, normalize: bool = False,
                 scale: float = 2 * math.pi, eps: float = 1e-6, offset: float = 0.0) -> None:
        super().__init__()
        self.num_feats, self.temperature = int(num_feats), temperature
        self.normalize, self.scale, self.eps, self.offset = normalize, float(scale), eps, offset

    def forward(self, mask: Tensor | None, like: Tensor | None = None) -> Tensor:
        if mask is None:
            if like is None:
                raise ValueError("SinePositionalEncoding needs a padding mask or a feature map to take the shape of")
            batch, _, height, width = like.shape
            valid = like.new_ones((batch, height, width), dtype=torch.float32)
        else:
            valid = (~mask.bool()).float()
        y_embed = valid.cumsum(1)
        x_embed = valid.cumsum(2)
        if self.normalize:
            y_embed = (y_embed + self.offset) / (y_embed[:, -1:, :] + self.eps) * self.scale
            x_embed = (x_embed + self.offset) / (x_embed[:, :, -1:] + self.eps) * self.scale
        dim_t = torch.arange(self.num_feats, dtype=torch.float32, device=valid.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_feats)
        return torch.cat((self._sin_cos(y_embed[..., None] / dim_t), self._sin_cos(x_embed[..., None] / dim_t)),
                         dim=3).permute(0, 3, 1, 2)

    @staticmethod
    def _sin_cos(angles: Tensor) -> Tensor:
        """Even channels as sine, odd ones as cosine, interleaved: (B, H, W, F)."""
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=4).flatten(3)


class LearnedPositionalEncoding(nn.Module):
    """A learned embedding per column and per row (DETR's learned variant): (B, 2 * num_feats, H, W), columns
    first. Maps up to ``row_num_embed`` x ``col_num_embed`` cells."""

    def __init__(self, num_feats: int, row_num_embed: int = 50, col_num_embed: int = 50) -> None:
        super().__init__()
        self.row_embed = nn.Embedding(row_num_embed, num_feats)
        self.col_embed = nn.Embedding(col_num_embed, num_feats)
        self.num_feats = int(num_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, mask: Tensor | None, like: Tensor | None = None) -> Tensor:
        source = mask if mask is not None else like
        if source is None:
            raise ValueError("LearnedPositionalEncoding needs a padding mask or a feature map to take the shape of")
        height, width = source.shape[-2:]
        if height > self.row_embed.num_embeddings or width > self.col_embed.num_embeddings:
            raise ValueError(
                f"LearnedPositionalEncoding: a {height}x{width} feature map exceeds its {self.row_embed.num_embeddings}"
                f"x{self.col_embed.num_embeddings} embeddings; raise row_num_embed / col_num_embed"
            )
        device = self.row_embed.weight.device
        cols = self.col_embed(torch.arange(width, device=device))
        rows = self.row_embed(torch.arange(height, device=device))
        pos = torch.cat((cols[None].expand(height, -1, -1), rows[:, None].expand(-1, width, -1)), dim=-1)
        return pos.permute(2, 0, 1)[None].expand(source.shape[0], -1, -1, -1)
