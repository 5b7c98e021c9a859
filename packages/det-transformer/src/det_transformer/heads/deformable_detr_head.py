"""DeformableDETRHead: per-decoder-layer classifiers and box regressors that predict offsets from each layer's
reference points (Zhu et al., "Deformable DETR", 2021), plus the two-stage variant's encoder proposals loss."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from det_common.layers import bias_init_with_prob
from det_transformer.heads.detr_head import DETRHead
from det_transformer.layers.deformable_detr_layers import inverse_sigmoid
from detcore.structures import Batch, ImageMeta, Instances


class DeformableDETRHead(DETRHead):
    """A linear classifier and an MLP (``num_reg_fcs`` hidden layers) per prediction layer, one set shared by all
    layers (``share_pred_layer``, plain Deformable DETR) or one per layer (box refinement). Boxes are
    ``sigmoid(regression + inverse_sigmoid(reference))``. With ``as_two_stage`` the extra last branch scores the
    encoder's proposals, trained class-agnostically as ``enc_loss_*``. The detector sets ``share_pred_layer``,
    ``num_pred_layer`` and ``as_two_stage``.
    """

    def __init__(self, *args: Any, share_pred_layer: bool = False, num_pred_layer: int = 6,
                 as_two_stage: bool = False, **kwargs: Any) -> None:
        self.share_pred_layer, self.num_pred_layer, self.as_two_stage = share_pred_layer, num_pred_layer, as_two_stage
        super().__init__(*args, **kwargs)

    def _init_layers(self) -> None:
        fc_cls = nn.Linear(self.embed_dims, self.cls_out_channels)
        layers: list[nn.Module] = []
        for _ in range(self.num_reg_fcs):
            layers += [nn.Linear(self.embed_dims, self.embed_dims), nn.ReLU()]
        reg_branch = nn.Sequential(*layers, nn.Linear(self.embed_dims, 4))
        if self.use_sigmoid:
            nn.init.constant_(fc_cls.bias, bias_init_with_prob(0.01))
        nn.init.zeros_(reg_branch[-1].weight)
        nn.init.zeros_(reg_branch[-1].bias)
        if self.share_pred_layer:
            self.cls_branches = nn.ModuleList([fc_cls] * self.num_pred_layer)
            self.reg_branches = nn.ModuleList([reg_branch] * self.num_pred_layer)
        else:
            self.cls_branches = nn.ModuleList([copy.deepcopy(fc_cls) for _ in range(self.num_pred_layer)])
            self.reg_branches = nn.ModuleList([copy.deepcopy(reg_branch) for _ in range(self.num_pred_layer)])
        if not self.as_two_stage:  # the first layer's boxes start at about 0.12 of the image
            with torch.no_grad():
                self.reg_branches[0][-1].bias[2:] = -2.0

    def forward(self, hidden_states: Tensor, references: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Class logits (L, B, Q, C) and sigmoid (cx, cy, w, h) boxes (L, B, Q, 4); ``references[i]`` is decoder
        layer i's input reference (points (B, Q, 2) or boxes (B, Q, 4))."""
        classes, boxes = [], []
        for i, state in enumerate(hidden_states):
            reference = inverse_sigmoid(references[i])
            delta = self.reg_branches[i](state)
            if reference.shape[-1] == 4:
                delta = delta + reference
            else:
                delta = torch.cat([delta[..., :2] + reference, delta[..., 2:]], -1)
            classes.append(self.cls_branches[i](state))
            boxes.append(delta.sigmoid())
        return torch.stack(classes), torch.stack(boxes)

    def loss(self, hidden_states: Tensor, batch: Batch, references: Sequence[Tensor] = (),
             enc_outputs_class: Tensor | None = None, enc_outputs_coord: Tensor | None = None) -> dict[str, Tensor]:
        losses = self.loss_by_feat(*self(hidden_states, references), batch)
        if enc_outputs_class is not None:
            gts = [Instances(gt.image_size, boxes=gt.boxes, labels=torch.zeros_like(gt.labels))
                   for gt in self._ground_truth(batch)]
            for name, value in self.loss_single(enc_outputs_class, enc_outputs_coord, gts, batch.metas).items():
                losses[f"enc_{name}"] = value
        return losses

    def predict(self, hidden_states: Tensor, metas: Sequence[ImageMeta], rescale: bool = True,
                references: Sequence[Tensor] = (), **unused: Tensor) -> list[Instances]:
        cls_scores, boxes = self(hidden_states, references)
        return [self.predict_single(c, b, meta, rescale) for c, b, meta in zip(cls_scores[-1], boxes[-1], metas)]
