"""DetectionTransformer: backbone -> neck -> transformer encoder -> decoder over queries -> set-prediction head.

The transformer runs in four overridable steps (``pre_transformer`` -> ``forward_encoder`` -> ``pre_decoder`` ->
``forward_decoder``), each returning keyword dictionaries for the later ones, so DETR variants change one step.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from det_common.detectors.base import BaseDetector
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances


def padding_mask(metas: Sequence[ImageMeta], batch_hw: tuple[int, int], feat_hw: tuple[int, int],
                 device: torch.device) -> Tensor | None:
    """(B, h, w) bool, True where a feature cell covers padding (nearest sampling of the input-size mask);
    None when no image of the batch is padded."""
    if all(tuple(m.img_shape) == tuple(batch_hw) for m in metas):
        return None
    masks = torch.ones((len(metas), 1, *batch_hw), device=device)
    for i, meta in enumerate(metas):
        masks[i, :, : meta.img_shape[0], : meta.img_shape[1]] = 0
    return F.interpolate(masks, size=feat_hw).to(torch.bool)[:, 0]


class DetectionTransformer(BaseDetector):
    """Base of the DETR family; ``train_cfg`` / ``test_cfg`` belong to the head (assigner / max_per_img)."""

    cfg_routes = {"train_cfg": ("bbox_head", "query_heads", "train_cfg"),
                  "test_cfg": ("bbox_head", "query_heads", "test_cfg")}

    def __init__(self, backbone: Mapping[str, Any], bbox_head: Mapping[str, Any],
                 neck: Mapping[str, Any] | None = None, encoder: Mapping[str, Any] | None = None,
                 decoder: Mapping[str, Any] | None = None, positional_encoding: Mapping[str, Any] | None = None,
                 num_queries: int = 100, train_cfg: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__(backbone, neck, train_cfg, test_cfg)
        self.num_queries = int(num_queries)
        self.encoder_cfg, self.decoder_cfg = dict(encoder or {}), dict(decoder or {})
        pos_cfg = {"type": "SinePositionalEncoding", **(positional_encoding or {})}
        self.positional_encoding = build("positional_encodings", pos_cfg)
        self.bbox_head = build("query_heads", bbox_head, train_cfg=train_cfg, test_cfg=test_cfg)
        self._init_layers()

    @abstractmethod
    def _init_layers(self) -> None:
        """Build the encoder, decoder and query embeddings from ``encoder_cfg`` / ``decoder_cfg``."""

    # -- the four transformer steps ------------------------------------------------------------------------
    @abstractmethod
    def pre_transformer(self, feats: Sequence[Tensor], batch: Batch) -> tuple[dict, dict]:
        """(encoder inputs, decoder inputs) from the neck features."""

    @abstractmethod
    def forward_encoder(self, **encoder_inputs: Tensor) -> dict:
        """Encoder outputs (``memory``, ...)."""

    @abstractmethod
    def pre_decoder(self, **encoder_outputs: Tensor) -> tuple[dict, dict]:
        """(decoder inputs, head inputs) from the encoder outputs: queries, their positions, ..."""

    @abstractmethod
    def forward_decoder(self, **decoder_inputs: Tensor) -> dict:
        """Head inputs (``hidden_states``, ...)."""

    def forward_transformer(self, feats: Sequence[Tensor], batch: Batch) -> dict:
        encoder_inputs, decoder_inputs = self.pre_transformer(feats, batch)
        encoder_outputs = self.forward_encoder(**encoder_inputs)
        more_decoder_inputs, head_inputs = self.pre_decoder(**encoder_outputs)
        head_inputs.update(self.forward_decoder(**decoder_inputs, **more_decoder_inputs))
        return head_inputs

    # -- detector API ----------------------------------------------------------------------------------------
    def loss(self, batch: Batch) -> dict[str, Tensor]:
        head_inputs = self.forward_transformer(self.extract_feat(batch.images), batch)
        return self.bbox_head.loss(batch=batch, **head_inputs)

    def predict(self, batch: Batch, rescale: bool = True) -> list[Instances]:
        head_inputs = self.forward_transformer(self.extract_feat(batch.images), batch)
        return self.bbox_head.predict(metas=batch.metas, rescale=rescale, **head_inputs)

    def forward_tensor(self, images: Tensor) -> Any:
        """The head's class logits and normalised boxes of every decoder layer for unpadded images."""
        height, width = images.shape[-2:]
        metas = [ImageMeta(ori_shape=(height, width), img_shape=(height, width), pad_shape=(height, width))
                 for _ in range(images.shape[0])]
        head_inputs = self.forward_transformer(self.extract_feat(images), Batch(images=images, metas=metas))
        return self.bbox_head(**head_inputs)
