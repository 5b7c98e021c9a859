"""Path Aggregation FPN (Liu et al. 2018): FPN plus a bottom-up path, MMDetection's parameter names."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from det_common.layers.conv_module import ConvModule
from det_common.necks.fpn import FPN


class PAFPN(FPN):
    """FPN whose outputs are refined bottom-up: ``downsample_convs`` (3x3, stride 2) add each level
    into the next coarser one, then ``pafpn_convs`` (3x3) smooth every level but the finest."""

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        upsample_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, num_outs, start_level=start_level, end_level=end_level,
            add_extra_convs=add_extra_convs, relu_before_extra_convs=relu_before_extra_convs,
            no_norm_on_lateral=no_norm_on_lateral, conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
            upsample_cfg=upsample_cfg,
        )
        self.downsample_convs = nn.ModuleList()
        self.pafpn_convs = nn.ModuleList()
        for _ in range(self.start_level + 1, self.backbone_end_level):
            self.downsample_convs.append(
                ConvModule(out_channels, out_channels, 3, stride=2, padding=1, conv_cfg=conv_cfg,
                           norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
            )
            self.pafpn_convs.append(
                ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                           norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
            )
        self.init_weights()

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, ...]:
        self._check_inputs(feats)
        laterals = self._top_down(feats)
        used = len(laterals)
        inter = [self.fpn_convs[i](laterals[i]) for i in range(used)]
        for i in range(used - 1):
            inter[i + 1] = inter[i + 1] + self.downsample_convs[i](inter[i])
        outs = [inter[0]] + [self.pafpn_convs[i - 1](inter[i]) for i in range(1, used)]
        return tuple(self._add_extra_levels(outs, feats, laterals))
