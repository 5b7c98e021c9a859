"""NASFCOSHead: FCOS with the head towers found by NAS-FCOS (Wang et al. 2020, "NAS-FCOS: Fast Neural
Architecture Search for Object Detection")."""

from __future__ import annotations

from torch import nn

from det_anchor_free.heads.fcos_head import FCOSHead
from det_common.layers import ConvModule, DeformConv2dPack, bias_init_with_prob, normal_init

#: the searched tower, per layer: (conv type, kernel size, conv bias): deformable 3x3, 3x3, deformable 3x3, 1x1
SEARCHED_TOWER: tuple[tuple[str, int, bool], ...] = (("DCNv2", 3, True), ("Conv", 3, False), ("DCNv2", 3, True),
                                                     ("Conv", 1, False))
_DCN_GROUPS = 2


class NASFCOSHead(FCOSHead):
    """An FCOSHead whose ``cls_convs`` / ``reg_convs`` are the searched "dconv3x3, conv3x3, dconv3x3, conv1x1"
    tower (modulated deformable convs with two offset groups and a bias, each conv followed by ``norm_cfg`` and
    ReLU). ``stacked_convs``, ``conv_cfg``, ``conv_bias`` and ``dcn_on_last_conv`` do not apply.
    Targets, losses and inference are FCOS's.
    """

    def _conv_tower(self) -> nn.ModuleList:
        tower = nn.ModuleList()
        for i, (conv_type, kernel, bias) in enumerate(SEARCHED_TOWER):
            conv_cfg = {"type": conv_type, "deform_groups": _DCN_GROUPS} if conv_type == "DCNv2" else {"type": conv_type}
            tower.append(
                ConvModule(self.in_channels if i == 0 else self.feat_channels, self.feat_channels, kernel,
                           padding=kernel // 2, bias=bias, conv_cfg=conv_cfg, norm_cfg=self.norm_cfg)
            )
        return tower

    def init_weights(self) -> None:
        """Caffe2-style Xavier (uniform Kaiming, a = 1, fan in) tower convs with zero deformable offsets;
        Normal(0, 0.01) predictors, ``conv_cls`` biased to a 0.01 foreground prior."""
        for module in [*self.cls_convs.modules(), *self.reg_convs.modules()]:
            if isinstance(module, ConvModule):
                nn.init.kaiming_uniform_(module.conv.weight, a=1, mode="fan_in", nonlinearity="leaky_relu")
                if module.conv.bias is not None:
                    nn.init.zeros_(module.conv.bias)
            if isinstance(module, DeformConv2dPack):
                nn.init.zeros_(module.conv_offset.weight)
                nn.init.zeros_(module.conv_offset.bias)
        normal_init(self.conv_reg, std=0.01)
        normal_init(self.conv_centerness, std=0.01)
        normal_init(self.conv_cls, std=0.01, bias=bias_init_with_prob(0.01))
