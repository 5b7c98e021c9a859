"""Deformable DETR's transformer (Zhu et al. 2021): encoder layers whose self-attention is multi-scale deformable
attention around each cell, decoder layers with query self-attention and deformable cross-attention, and the
decoder's iterative box refinement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from det_common.layers import build_norm_layer
from det_transformer.layers.attention import FFN, MultiheadAttention
from det_transformer.layers.ms_deform_attn import MultiScaleDeformableAttention

LAYER_NORM = {"type": "LN"}


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """log(x / (1 - x)) with x clamped to [0, 1] and both terms to at least ``eps``."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class DeformableDetrTransformerEncoderLayer(nn.Module):
    """Deformable self-attention over all levels -> norm -> FFN -> norm."""

    def __init__(self, self_attn_cfg: Mapping[str, Any], ffn_cfg: Mapping[str, Any],
                 norm_cfg: Mapping[str, Any] = LAYER_NORM) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(**self_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**ffn_cfg)
        self.norms = nn.ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(2)])

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor | None, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        query = self.norms[0](self.self_attn(query, query, query_pos, key_padding_mask, reference_points,
                                             spatial_shapes, level_start_index))
        return self.norms[1](self.ffn(query))


class DeformableDetrTransformerDecoderLayer(nn.Module):
    """Query self-attention -> norm -> deformable cross-attention to the memory -> norm -> FFN -> norm."""

    def __init__(self, self_attn_cfg: Mapping[str, Any], cross_attn_cfg: Mapping[str, Any],
                 ffn_cfg: Mapping[str, Any], norm_cfg: Mapping[str, Any] = LAYER_NORM) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(**self_attn_cfg)
        self.cross_attn = MultiScaleDeformableAttention(**cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**ffn_cfg)
        self.norms = nn.ModuleList([build_norm_layer(norm_cfg, self.embed_dims)[1] for _ in range(3)])

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Tensor | None,
                reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        query = self.norms[0](self.self_attn(query, query_pos=query_pos, key_pos=query_pos))
        query = self.norms[1](self.cross_attn(query, memory, query_pos, memory_mask, reference_points,
                                              spatial_shapes, level_start_index))
        return self.norms[2](self.ffn(query))


class DeformableDetrTransformerEncoder(nn.Module):
    """``num_layers`` encoder layers; every cell's reference point is its own centre, on every level."""

    def __init__(self, num_layers: int, layer_cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DeformableDetrTransformerEncoderLayer(**layer_cfg) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor | None, spatial_shapes: Tensor,
                level_start_index: Tensor, valid_ratios: Tensor) -> Tensor:
        reference_points = self.reference_points(spatial_shapes, valid_ratios)
        for layer in self.layers:
            query = layer(query, query_pos, key_padding_mask, reference_points, spatial_shapes, level_start_index)
        return query

    @staticmethod
    def reference_points(spatial_shapes: Tensor, valid_ratios: Tensor) -> Tensor:
        """(B, S, L, 2): each cell's centre as a fraction of its level's valid area, seen from every level."""
        points = []
        for level, (height, width) in enumerate(spatial_shapes.tolist()):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, height - 0.5, height, dtype=torch.float32, device=valid_ratios.device),
                torch.linspace(0.5, width - 0.5, width, dtype=torch.float32, device=valid_ratios.device),
                indexing="ij")
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, level, 1] * height)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, level, 0] * width)
            points.append(torch.stack((ref_x, ref_y), -1))
        return torch.cat(points, 1)[:, :, None] * valid_ratios[:, None]


class DeformableDetrTransformerDecoder(nn.Module):
    """``num_layers`` decoder layers without a final norm. With ``reg_branches`` (iterative box refinement) each
    layer's regression updates the reference points of the next (detached); returns every layer's states
    (L, B, Q, C) and references (L, B, Q, 2 or 4) when ``return_intermediate``."""

    def __init__(self, num_layers: int, layer_cfg: Mapping[str, Any], return_intermediate: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DeformableDetrTransformerDecoderLayer(**layer_cfg) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims
        self.return_intermediate = return_intermediate

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def forward(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Tensor | None,
                reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, valid_ratios: Tensor,
                reg_branches: Sequence[nn.Module] | None = None) -> tuple[Tensor, Tensor]:
        states, references = [], []
        for i, layer in enumerate(self.layers):
            ratios = torch.cat([valid_ratios, valid_ratios], -1) if reference_points.shape[-1] == 4 else valid_ratios
            query = layer(query, query_pos, memory, memory_mask, reference_points[:, :, None] * ratios[:, None],
                          spatial_shapes, level_start_index)
            if reg_branches is not None:
                delta = reg_branches[i](query)
                if reference_points.shape[-1] == 4:
                    refined = delta + inverse_sigmoid(reference_points)
                else:
                    refined = torch.cat([delta[..., :2] + inverse_sigmoid(reference_points), delta[..., 2:]], -1)
                reference_points = refined.sigmoid().detach()
            if self.return_intermediate:
                states.append(query)
                references.append(reference_points)
        if self.return_intermediate:
            return torch.stack(states), torch.stack(references)
        return query[None], reference_points[None]
