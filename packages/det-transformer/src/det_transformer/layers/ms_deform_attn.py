"""Multi-scale deformable attention (Zhu et al., "Deformable DETR", 2021) over detcore's op, which dispatches to
det-ops-cuda's compiled kernel when it is installed and to the reference (grid_sample) otherwise."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from detcore import ops


class MultiScaleDeformableAttention(nn.Module):
    """Each query attends to ``num_points`` sampled locations per head and level around its reference point:
    offsets and attention weights are linear in the query (+ position), values are the projected flattened maps.

    ``reference_points`` (B, Q, L, 2) normalised (x, y): offsets are in cells of each level; (B, Q, L, 4) boxes
    (cx, cy, w, h): offsets are fractions of half the box, divided by ``num_points``. Parameter names as MMCV's
    ``MultiScaleDeformableAttention``; output ``identity + dropout(output_proj(...))``.
    """

    def __init__(self, embed_dims: int = 256, num_heads: int = 8, num_levels: int = 4, num_points: int = 4,
                 dropout: float = 0.1, batch_first: bool = True, value_proj_ratio: float = 1.0) -> None:
        super().__init__()
        if not batch_first:
            raise ValueError("MultiScaleDeformableAttention: only batch_first = true is supported")
        if embed_dims % num_heads:
            raise ValueError(f"MultiScaleDeformableAttention: embed_dims ({embed_dims}) must be divisible by "
                             f"num_heads ({num_heads})")
        self.embed_dims, self.num_heads, self.num_levels, self.num_points = embed_dims, num_heads, num_levels, num_points
        value_dims = int(embed_dims * value_proj_ratio)
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(embed_dims, value_dims)
        self.output_proj = nn.Linear(value_dims, embed_dims)
        self.dropout = nn.Dropout(dropout)
        self.init_weights()

    def init_weights(self) -> None:
        """Offsets start as rings of ``num_points`` radii in ``num_heads`` directions, attention uniform."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.num_heads, 1, 1, 2)
        grid = grid.repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for linear in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, query: Tensor, value: Tensor | None, query_pos: Tensor | None, key_padding_mask: Tensor | None,
                reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        value = query if value is None else value
        identity = query
        if query_pos is not None:
            query = query + query_pos
        batch, num_queries, _ = query.shape
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(batch, value.shape[1], self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(batch, num_queries, self.num_heads, self.num_levels,
                                                    self.num_points, 2)
        weights = self.attention_weights(query).view(batch, num_queries, self.num_heads,
                                                     self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(batch, num_queries, self.num_heads, self.num_levels, self.num_points)
        if reference_points.shape[-1] == 2:
            normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
            locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / self.num_points * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(f"MultiScaleDeformableAttention: reference_points must end in 2 (points) or 4 (boxes), "
                             f"got {tuple(reference_points.shape)}")
        output = ops.multi_scale_deformable_attention(value, spatial_shapes, level_start_index, locations, weights)
        return identity + self.dropout(self.output_proj(output))
