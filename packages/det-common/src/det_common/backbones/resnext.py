"""ResNeXt (Xie et al. 2017): ResNet whose bottleneck 3x3 conv is grouped (cardinality ``groups``)."""

from __future__ import annotations

from typing import Any

from det_common.backbones.resnet import Bottleneck, ResNet


class ResNeXt(ResNet):
    """ResNeXt-50/101/152, e.g. 32x4d is ``groups=32, base_width=4``; names match torchvision's resnext."""

    arch_settings = {depth: arch for depth, arch in ResNet.arch_settings.items() if arch[0] is Bottleneck}

    def __init__(self, depth: int, groups: int = 1, base_width: int = 4, **kwargs: Any) -> None:
        super().__init__(depth, groups=groups, base_width=base_width, **kwargs)
