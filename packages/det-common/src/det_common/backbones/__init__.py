"""Backbones: ResNet, ResNetV1d, ResNeXt, Res2Net and VGG (SSD variant), with MMDetection parameter names."""

from det_common.backbones.pretrained import LoadReport, load_pretrained
from det_common.backbones.res2net import Bottle2neck, Res2Net
from det_common.backbones.resnet import BasicBlock, Bottleneck, ResNet, ResNetV1d, make_res_layer
from det_common.backbones.resnext import ResNeXt
from det_common.backbones.vgg import VGG

__all__ = [
    "BasicBlock", "Bottle2neck", "Bottleneck", "LoadReport", "Res2Net", "ResNeXt", "ResNet", "ResNetV1d", "VGG", "load_pretrained",
    "make_res_layer",
]
