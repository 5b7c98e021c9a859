"""Layers built from config tables: ConvModule, norms, activations, convs (plain / WS / deformable), init helpers."""

from det_common.layers.activation import build_activation_layer
from det_common.layers.conv import ConvWS2d, DeformConv2d, DeformConv2dPack, ModulatedDeformConv2dPack, build_conv_layer
from det_common.layers.conv_module import ConvModule
from det_common.layers.conv_tower import conv_tower, forward_towers
from det_common.layers.fusion import fuse_conv_bn
from det_common.layers.init import bias_init_with_prob, constant_init, normal_init, xavier_init
from det_common.layers.norm import build_norm_layer, is_norm
from det_common.layers.scale import Scale

__all__ = [
    "ConvModule", "ConvWS2d", "DeformConv2d", "DeformConv2dPack", "ModulatedDeformConv2dPack", "Scale", "bias_init_with_prob",
    "build_activation_layer", "build_conv_layer", "build_norm_layer", "constant_init", "conv_tower", "forward_towers", "fuse_conv_bn", "is_norm",
    "normal_init", "xavier_init",
]
