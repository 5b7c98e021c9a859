"""DETR (Carion et al., "End-to-End Object Detection with Transformers", 2020) in MMDetection 3's layout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from det_transformer.detectors.base_detr import DetectionTransformer, padding_mask
from det_transformer.layers.detr_layers import DetrTransformerDecoder, DetrTransformerEncoder
from detcore.structures import Batch


class DETR(DetectionTransformer):
    """The last neck level, flattened, goes through a transformer encoder; ``num_queries`` learned query
    positions decode it into a set of boxes, matched one to one to the ground truth in training."""

    def _init_layers(self) -> None:
        self.encoder = DetrTransformerEncoder(**self.encoder_cfg)
        self.decoder = DetrTransformerDecoder(**self.decoder_cfg)
        self.embed_dims = self.encoder.embed_dims
        self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims)
        if 2 * self.positional_encoding.num_feats != self.embed_dims:
            raise ValueError(f"DETR: positional_encoding.num_feats ({self.positional_encoding.num_feats}) must be "
                             f"half the transformer's embed_dims ({self.embed_dims})")
        for coder in (self.encoder, self.decoder):
            for param in coder.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)

    def pre_transformer(self, feats: Sequence[Tensor], batch: Batch) -> tuple[dict, dict]:
        feat = feats[-1]
        batch_size, channels = feat.shape[:2]
        mask = padding_mask(batch.metas, tuple(batch.images.shape[-2:]), tuple(feat.shape[-2:]), feat.device)
        pos = self.positional_encoding(mask, like=feat)
        feat = feat.flatten(2).transpose(1, 2)
        pos = pos.flatten(2).transpose(1, 2)
        mask = mask.flatten(1) if mask is not None else None
        return {"feat": feat, "feat_mask": mask, "feat_pos": pos}, {"memory_mask": mask, "memory_pos": pos}

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor | None, feat_pos: Tensor) -> dict:
        return {"memory": self.encoder(feat, feat_pos, feat_mask)}

    def pre_decoder(self, memory: Tensor) -> tuple[dict, dict]:
        query_pos = self.query_embedding.weight[None].expand(memory.shape[0], -1, -1)
        return {"query": torch.zeros_like(query_pos), "query_pos": query_pos, "memory": memory}, {}

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Tensor | None,
                        memory_pos: Tensor) -> dict:
        return {"hidden_states": self.decoder(query, memory, query_pos, memory_pos, memory_mask)}
