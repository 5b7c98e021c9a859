"""Stacked 3x3 ConvModules: the classification / regression towers of dense heads (RetinaNet, FCOS, ATSS, GFL,
PAA, VFNet ...), optionally with GroupNorm (``norm_cfg``) and a deformable last conv (VFNet's ``dcn_on_last_conv``)."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from det_common.layers.conv_module import ConvModule


def conv_tower(
    in_channels: int,
    feat_channels: int,
    num_convs: int,
    conv_cfg: Mapping[str, Any] | None = None,
    norm_cfg: Mapping[str, Any] | None = None,
    bias: bool | str = "auto",
    dcn_on_last_conv: bool = False,
) -> nn.ModuleList:
    """``num_convs`` 3x3 ConvModules (conv, norm, ReLU), the first from ``in_channels``; ``bias="auto"`` gives
    the convs a bias only without a norm. With ``dcn_on_last_conv`` the last one is a ``DCNv2`` conv."""
    convs = nn.ModuleList()
    for i in range(num_convs):
        layer_cfg = {"type": "DCNv2"} if dcn_on_last_conv and i == num_convs - 1 else conv_cfg
        convs.append(
            ConvModule(
                in_channels if i == 0 else feat_channels, feat_channels, 3, padding=1, bias=bias,
                conv_cfg=layer_cfg, norm_cfg=norm_cfg,
            )
        )
    return convs


def forward_towers(x: Tensor, cls_convs: nn.ModuleList, reg_convs: nn.ModuleList) -> tuple[Tensor, Tensor]:
    """(cls_feat, reg_feat): ``x`` through the classification and the regression tower."""
    cls_feat, reg_feat = x, x
    for conv in cls_convs:
        cls_feat = conv(cls_feat)
    for conv in reg_convs:
        reg_feat = conv(reg_feat)
    return cls_feat, reg_feat
