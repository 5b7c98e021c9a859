"""DETR's transformer (Carion et al., "End-to-End Object Detection with Transformers"): post-norm encoder layers
(self-attention, FFN) and decoder layers (self-attention, cross-attention to the encoder memory, FFN)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from det_common.layers import build_norm_layer
from det_transformer.layers.attention import FFN, MultiheadAttention

LAYER_NORM = {"type": "LN"}


def _norms(cfg: Mapping[str, Any], channels: int, count: int) -> nn.ModuleList:
    return nn.ModuleList([build_norm_layer(cfg, channels)[1] for _ in range(count)])


class DetrTransformerEncoderLayer(nn.Module):
    """Self-attention -> norm -> FFN -> norm over the flattened feature map."""

    def __init__(self, self_attn_cfg: Mapping[str, Any], ffn_cfg: Mapping[str, Any],
                 norm_cfg: Mapping[str, Any] = LAYER_NORM) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(**self_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**ffn_cfg)
        self.norms = _norms(norm_cfg, self.embed_dims, 2)

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        query = self.norms[0](self.self_attn(query, query_pos=query_pos, key_pos=query_pos,
                                             key_padding_mask=key_padding_mask))
        return self.norms[1](self.ffn(query))


class DetrTransformerDecoderLayer(nn.Module):
    """Self-attention among queries -> norm -> cross-attention to the memory -> norm -> FFN -> norm."""

    def __init__(self, self_attn_cfg: Mapping[str, Any], cross_attn_cfg: Mapping[str, Any],
                 ffn_cfg: Mapping[str, Any], norm_cfg: Mapping[str, Any] = LAYER_NORM) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(**self_attn_cfg)
        self.cross_attn = MultiheadAttention(**cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**ffn_cfg)
        self.norms = _norms(norm_cfg, self.embed_dims, 3)

    def forward(self, query: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor,
                memory_padding_mask: Tensor | None) -> Tensor:
        query = self.norms[0](self.self_attn(query, query_pos=query_pos, key_pos=query_pos))
        query = self.norms[1](self.cross_attn(query, memory, memory, query_pos=query_pos, key_pos=memory_pos,
                                              key_padding_mask=memory_padding_mask))
        return self.norms[2](self.ffn(query))


class DetrTransformerEncoder(nn.Module):
    """``num_layers`` encoder layers built from one ``layer_cfg``."""

    def __init__(self, num_layers: int, layer_cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DetrTransformerEncoderLayer(**layer_cfg) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims

    def forward(self, query: Tensor, query_pos: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        for layer in self.layers:
            query = layer(query, query_pos, key_padding_mask)
        return query


class DetrTransformerDecoder(nn.Module):
    """``num_layers`` decoder layers; returns every layer's normed output (L, B, Q, C) when
    ``return_intermediate`` (the auxiliary decoding losses of DETR), else the last one (1, B, Q, C)."""

    def __init__(self, num_layers: int, layer_cfg: Mapping[str, Any], post_norm_cfg: Mapping[str, Any] = LAYER_NORM,
                 return_intermediate: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList([DetrTransformerDecoderLayer(**layer_cfg) for _ in range(num_layers)])
        self.embed_dims = self.layers[0].embed_dims
        self.post_norm = build_norm_layer(post_norm_cfg, self.embed_dims)[1]
        self.return_intermediate = return_intermediate

    def forward(self, query: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor,
                memory_padding_mask: Tensor | None) -> Tensor:
        outputs = []
        for layer in self.layers:
            query = layer(query, memory, query_pos, memory_pos, memory_padding_mask)
            if self.return_intermediate:
                outputs.append(self.post_norm(query))
        return torch.stack(outputs) if self.return_intermediate else self.post_norm(query)[None]
