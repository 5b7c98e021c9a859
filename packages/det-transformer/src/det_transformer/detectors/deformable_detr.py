"""Deformable DETR (Zhu et al., "Deformable DETR: Deformable Transformers for End-to-End Object Detection", 2021):
plain, with iterative box refinement, and two-stage, in MMDetection 3's layout."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_transformer.detectors.base_detr import DetectionTransformer
from det_transformer.layers.deformable_detr_layers import (
    DeformableDetrTransformerDecoder, DeformableDetrTransformerEncoder,
)
from detcore.structures import Batch


class DeformableDETR(DetectionTransformer):
    """Multi-level features attend sparsely (deformable attention) in the encoder; queries decode them around
    reference points. ``with_box_refine``: each decoder layer refines the previous layer's boxes with its own
    prediction branches. ``as_two_stage``: the encoder scores every cell as a proposal and the ``num_queries`` best
    become the decoder's reference boxes and queries.
    """

    def __init__(self, *args: Any, decoder: Mapping[str, Any] | None = None,
                 bbox_head: Mapping[str, Any] | None = None, with_box_refine: bool = False,
                 as_two_stage: bool = False, num_feature_levels: int = 4, **kwargs: Any) -> None:
        self.with_box_refine, self.as_two_stage = with_box_refine, as_two_stage
        self.num_feature_levels = num_feature_levels
        bbox_head = dict(bbox_head or {})
        set_here = {"share_pred_layer", "num_pred_layer", "as_two_stage"} & set(bbox_head)
        if set_here:
            raise ValueError(f"DeformableDETR: model.bbox_head.{sorted(set_here)} are set by the detector from "
                             "with_box_refine / as_two_stage; remove them from the head's table")
        num_layers = int((decoder or {}).get("num_layers", 6))
        bbox_head.update(share_pred_layer=not with_box_refine, as_two_stage=as_two_stage,
                         num_pred_layer=num_layers + 1 if as_two_stage else num_layers)
        super().__init__(*args, decoder=decoder, bbox_head=bbox_head, **kwargs)

    def _init_layers(self) -> None:
        self.encoder = DeformableDetrTransformerEncoder(**self.encoder_cfg)
        self.decoder = DeformableDetrTransformerDecoder(**self.decoder_cfg)
        self.embed_dims = self.encoder.embed_dims
        if 2 * self.positional_encoding.num_feats != self.embed_dims:
            raise ValueError(f"DeformableDETR: positional_encoding.num_feats ({self.positional_encoding.num_feats}) "
                             f"must be half the transformer's embed_dims ({self.embed_dims})")
        if not self.as_two_stage:
            self.query_embedding = nn.Embedding(self.num_queries, self.embed_dims * 2)
        self.level_embed = nn.Parameter(torch.empty(self.num_feature_levels, self.embed_dims))
        if self.as_two_stage:
            self.memory_trans_fc = nn.Linear(self.embed_dims, self.embed_dims)
            self.memory_trans_norm = nn.LayerNorm(self.embed_dims)
            self.pos_trans_fc = nn.Linear(self.embed_dims * 2, self.embed_dims * 2)
            self.pos_trans_norm = nn.LayerNorm(self.embed_dims * 2)
        else:
            self.reference_points_fc = nn.Linear(self.embed_dims, 2)
        for coder in (self.encoder, self.decoder):
            for param in coder.parameters():
                if param.dim() > 1:
                    nn.init.xavier_uniform_(param)
        for module in self.modules():
            if hasattr(module, "sampling_offsets"):
                module.init_weights()
        linears = [self.memory_trans_fc, self.pos_trans_fc] if self.as_two_stage else [self.reference_points_fc]
        for linear in linears:
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
        nn.init.normal_(self.level_embed)

    # -- the transformer steps -------------------------------------------------------------------------------
    def pre_transformer(self, feats: Sequence[Tensor], batch: Batch) -> tuple[dict, dict]:
        if len(feats) != self.num_feature_levels:
            raise ValueError(f"DeformableDETR: the neck gives {len(feats)} levels, num_feature_levels is "
                             f"{self.num_feature_levels}; make neck.num_outs and num_feature_levels agree")
        batch_hw = tuple(batch.images.shape[-2:])
        padded = any(tuple(m.img_shape) != batch_hw for m in batch.metas)
        masks: list[Tensor | None] = [None] * len(feats)
        if padded:
            full = feats[0].new_ones((1, len(batch.metas), *batch_hw))
            for i, meta in enumerate(batch.metas):
                full[0, i, : meta.img_shape[0], : meta.img_shape[1]] = 0
            masks = [F.interpolate(full, size=f.shape[-2:]).to(torch.bool)[0] for f in feats]
        flat, pos_flat, mask_flat, shapes = [], [], [], []
        for level, (feat, mask) in enumerate(zip(feats, masks)):
            pos = self.positional_encoding(mask, like=feat)
            flat.append(feat.flatten(2).transpose(1, 2))
            pos_flat.append(pos.flatten(2).transpose(1, 2) + self.level_embed[level].view(1, 1, -1))
            if mask is not None:
                mask_flat.append(mask.flatten(1))
            shapes.append(feat.shape[-2:])
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=feats[0].device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        if padded:
            valid_ratios = torch.stack([self.valid_ratio(m) for m in masks], 1)
        else:
            valid_ratios = feats[0].new_ones(feats[0].shape[0], len(feats), 2)
        memory_mask = torch.cat(mask_flat, 1) if padded else None
        common = {"spatial_shapes": spatial_shapes, "level_start_index": level_start_index, "valid_ratios": valid_ratios}
        return ({"feat": torch.cat(flat, 1), "feat_mask": memory_mask, "feat_pos": torch.cat(pos_flat, 1), **common},
                {"memory_mask": memory_mask, **common})

    @staticmethod
    def valid_ratio(mask: Tensor) -> Tensor:
        """(B, 2): the unpadded fraction of a level's width and height."""
        _, height, width = mask.shape
        valid_h = (~mask[:, :, 0]).sum(1).float() / height
        valid_w = (~mask[:, 0, :]).sum(1).float() / width
        return torch.stack([valid_w, valid_h], -1)

    def forward_encoder(self, feat: Tensor, feat_mask: Tensor | None, feat_pos: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, valid_ratios: Tensor) -> dict:
        memory = self.encoder(feat, feat_pos, feat_mask, spatial_shapes, level_start_index, valid_ratios)
        return {"memory": memory, "memory_mask": feat_mask, "spatial_shapes": spatial_shapes}

    def pre_decoder(self, memory: Tensor, memory_mask: Tensor | None, spatial_shapes: Tensor) -> tuple[dict, dict]:
        batch_size, _, channels = memory.shape
        head_inputs: dict[str, Tensor] = {}
        if self.as_two_stage:
            output_memory, proposals = self.encoder_proposals(memory, memory_mask, spatial_shapes)
            last = self.decoder.num_layers
            enc_class = self.bbox_head.cls_branches[last](output_memory)
            enc_coord_unact = self.bbox_head.reg_branches[last](output_memory) + proposals
            topk = torch.topk(enc_class[..., 0], self.num_queries, dim=1)[1]
            topk_coords_unact = torch.gather(enc_coord_unact, 1, topk[..., None].expand(-1, -1, 4)).detach()
            reference_points = topk_coords_unact.sigmoid()
            pos_trans = self.pos_trans_norm(self.pos_trans_fc(self.proposal_pos_embed(topk_coords_unact,
                                                                                      channels // 2)))
            query_pos, query = torch.split(pos_trans, channels, dim=2)
            if self.training:
                head_inputs = {"enc_outputs_class": enc_class, "enc_outputs_coord": enc_coord_unact.sigmoid()}
        else:
            query_pos, query = torch.split(self.query_embedding.weight, channels, dim=1)
            query_pos = query_pos[None].expand(batch_size, -1, -1)
            query = query[None].expand(batch_size, -1, -1)
            reference_points = self.reference_points_fc(query_pos).sigmoid()
        return {"query": query, "query_pos": query_pos, "memory": memory, "reference_points": reference_points}, head_inputs

    def forward_decoder(self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_mask: Tensor | None,
                        reference_points: Tensor, spatial_shapes: Tensor, level_start_index: Tensor,
                        valid_ratios: Tensor) -> dict:
        states, references = self.decoder(query, query_pos, memory, memory_mask, reference_points, spatial_shapes,
                                          level_start_index, valid_ratios,
                                          self.bbox_head.reg_branches if self.with_box_refine else None)
        return {"hidden_states": states, "references": [reference_points, *references]}

    # -- two-stage proposals ---------------------------------------------------------------------------------
    def encoder_proposals(self, memory: Tensor, memory_mask: Tensor | None,
                          spatial_shapes: Tensor) -> tuple[Tensor, Tensor]:
        """One proposal box per memory cell: its centre, 0.05 x 2^level of the image wide and high, as
        inverse-sigmoid (inf where the cell is padding or the box is within 0.01 of the border); and the memory
        projected for scoring them (zeroed where they are invalid)."""
        batch_size = memory.shape[0]
        proposals, start = [], 0
        for level, (height, width) in enumerate(spatial_shapes.tolist()):
            if memory_mask is not None:
                mask = memory_mask[:, start:start + height * width].view(batch_size, height, width)
                scale = torch.stack([(~mask[:, 0, :]).sum(1), (~mask[:, :, 0]).sum(1)], -1).view(batch_size, 1, 1, 2)
            else:
                scale = memory.new_tensor([width, height]).view(1, 1, 1, 2)
            grid_y, grid_x = torch.meshgrid(
                torch.linspace(0, height - 1, height, dtype=torch.float32, device=memory.device),
                torch.linspace(0, width - 1, width, dtype=torch.float32, device=memory.device), indexing="ij")
            grid = (torch.stack([grid_x, grid_y], -1)[None].expand(batch_size, -1, -1, -1) + 0.5) / scale
            wh = torch.ones_like(grid) * 0.05 * (2.0 ** level)
            proposals.append(torch.cat((grid, wh), -1).view(batch_size, -1, 4))
            start += height * width
        proposals = torch.cat(proposals, 1)
        valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1, keepdim=True)
        proposals = torch.log(proposals / (1 - proposals))
        output_memory = memory
        if memory_mask is not None:
            proposals = proposals.masked_fill(memory_mask[..., None], float("inf"))
            output_memory = output_memory.masked_fill(memory_mask[..., None], 0.0)
        proposals = proposals.masked_fill(~valid, float("inf"))
        output_memory = output_memory.masked_fill(~valid, 0.0)
        return self.memory_trans_norm(self.memory_trans_fc(output_memory)), proposals

    @staticmethod
    def proposal_pos_embed(proposals: Tensor, num_pos_feats: int = 128, temperature: float = 10000) -> Tensor:
        """Sine embedding of the four sigmoid box coordinates, ``num_pos_feats`` channels each."""
        dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=proposals.device)
        dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)
        pos = proposals.sigmoid()[..., None] * (2 * math.pi) / dim_t
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=4).flatten(2)
