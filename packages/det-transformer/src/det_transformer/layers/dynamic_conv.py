"""Sparse R-CNN's dynamic instance interaction (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with
Learnable Proposals"): each proposal's feature generates the weights of two 1x1 convolutions applied to its own
RoI features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from det_common.layers import build_activation_layer, build_norm_layer


class DynamicConv(nn.Module):
    """Per-proposal ``in -> feat -> out`` channel mixing of its S x S RoI features, with weights predicted by
    ``dynamic_layer`` from the proposal feature; then (``with_proj``) the S x S cells flattened and projected
    to ``out_channels``. Parameter names follow MMDetection (``dynamic_layer``, ``norm_in``, ``norm_out``,
    ``fc_layer``, ``fc_norm``)."""

    def __init__(self, in_channels: int = 256, feat_channels: int = 64, out_channels: int | None = None,
                 input_feat_shape: int = 7, with_proj: bool = True,
                 act_cfg: Mapping[str, Any] | None = None, norm_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        act_cfg = act_cfg or {"type": "ReLU", "inplace": True}
        norm_cfg = norm_cfg or {"type": "LN"}
        self.in_channels, self.feat_channels = in_channels, feat_channels
        self.out_channels = out_channels or in_channels
        self.with_proj = with_proj
        self.num_params_in = in_channels * feat_channels
        self.num_params_out = self.out_channels * feat_channels
        self.dynamic_layer = nn.Linear(in_channels, self.num_params_in + self.num_params_out)
        self.norm_in = build_norm_layer(norm_cfg, feat_channels)[1]
        self.norm_out = build_norm_layer(norm_cfg, self.out_channels)[1]
        self.activation = build_activation_layer(act_cfg)
        if with_proj:
            self.fc_layer = nn.Linear(self.out_channels * input_feat_shape**2, self.out_channels)
            self.fc_norm = build_norm_layer(norm_cfg, self.out_channels)[1]

    def forward(self, param_feature: Tensor, input_feature: Tensor) -> Tensor:
        """Proposal features (K, in) and their RoI features (K, in, S, S) -> (K, out) (or (K, S*S, out) without
        ``with_proj``)."""
        cells = input_feature.flatten(2).transpose(1, 2)  # (K, S*S, in)
        params = self.dynamic_layer(param_feature)
        param_in = params[:, : self.num_params_in].view(-1, self.in_channels, self.feat_channels)
        param_out = params[:, -self.num_params_out :].view(-1, self.feat_channels, self.out_channels)
        features = self.activation(self.norm_in(torch.bmm(cells, param_in)))
        features = self.activation(self.norm_out(torch.bmm(features, param_out)))
        if self.with_proj:
            features = self.activation(self.fc_norm(self.fc_layer(features.flatten(1))))
        return features


def build_dynamic_conv(cfg: Mapping[str, Any]) -> DynamicConv:
    """The ``dynamic_conv_cfg`` table of a ``DIIHead`` (``type = "DynamicConv"``) as a module."""
    kwargs = dict(cfg)
    kind = kwargs.pop("type", "DynamicConv")
    if kind != "DynamicConv":
        raise ValueError(f"DIIHead: dynamic_conv_cfg.type must be 'DynamicConv', got {kind!r}")
    return DynamicConv(**kwargs)
