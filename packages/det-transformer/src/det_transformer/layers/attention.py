"""The two transformer sub-layers, in MMCV's parameter layout: multi-head attention with positional
embeddings added to queries and keys, and the position-wise feed-forward network (Vaswani et al. 2017)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from det_common.layers import build_activation_layer


class MultiheadAttention(nn.Module):
    """``identity + dropout(attn(query + query_pos, key + key_pos, value))`` on batch-first (B, L, C) tensors.

    ``key`` defaults to ``query``, ``value`` to ``key`` and ``key_pos`` to ``query_pos`` when the shapes agree.
    The weights live in ``self.attn`` (torch's ``nn.MultiheadAttention``), as in MMCV checkpoints.
    """

    def __init__(self, embed_dims: int, num_heads: int, dropout: float = 0.0, batch_first: bool = True) -> None:
        super().__init__()
        if not batch_first:
            raise ValueError("MultiheadAttention: only batch_first = true is supported (tensors are (B, L, C))")
        self.embed_dims, self.num_heads = embed_dims, num_heads
        # sequence-first inside, as MMCV: torch's batch-first inference fast path rounds differently, and
        # Hungarian matching of near-identical queries is sensitive to the last bit
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None,
                query_pos: Tensor | None = None, key_pos: Tensor | None = None, attn_mask: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        key = query if key is None else key
        value = key if value is None else value
        if key_pos is None and query_pos is not None and query_pos.shape == key.shape:
            key_pos = query_pos
        identity = query
        if query_pos is not None:
            query = query + query_pos
        if key_pos is not None:
            key = key + key_pos
        out = self.attn(query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1), attn_mask=attn_mask,
                        key_padding_mask=key_padding_mask, need_weights=False)[0]
        return identity + self.dropout(out.transpose(0, 1))


class FFN(nn.Module):
    """``num_fcs`` linear layers with activation and dropout between them, plus the input (``add_identity``).
    Parameters under ``layers.0.0`` ... ``layers.<num_fcs - 1>`` as in MMCV."""

    def __init__(self, embed_dims: int = 256, feedforward_channels: int = 1024, num_fcs: int = 2,
                 act_cfg: Mapping[str, Any] | None = None, ffn_drop: float = 0.0, add_identity: bool = True) -> None:
        super().__init__()
        if num_fcs < 2:
            raise ValueError(f"FFN: num_fcs must be >= 2, got {num_fcs}")
        act_cfg = act_cfg or {"type": "ReLU", "inplace": True}
        blocks: list[nn.Module] = []
        channels = embed_dims
        for _ in range(num_fcs - 1):
            blocks.append(nn.Sequential(nn.Linear(channels, feedforward_channels), build_activation_layer(act_cfg),
                                        nn.Dropout(ffn_drop)))
            channels = feedforward_channels
        blocks += [nn.Linear(channels, embed_dims), nn.Dropout(ffn_drop)]
        self.layers = nn.Sequential(*blocks)
        self.add_identity = add_identity

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x)
        return x + out if self.add_identity else out
