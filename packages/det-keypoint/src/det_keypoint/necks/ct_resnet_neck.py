"""CenterNet's upsampling neck (Zhou et al., "Objects as Points"): the last backbone map through
(3x3 conv, 2x transposed conv) pairs, each with BatchNorm and ReLU, to a stride-4 map."""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from det_common.layers import ConvModule


class CTResNetNeck(nn.Module):
    """Upsample ``x[-1]`` by 2 per stage: a 3x3 conv (DCNv2 with ``use_dcn``, as the paper's ResNet variant)
    to ``num_deconv_filters[i]`` channels, then a ``num_deconv_kernels[i]`` transposed conv of stride 2.
    Modules are named as MMDetection's (``deconv_layers.<i>.conv`` / ``.bn``) so its checkpoints load."""

    def __init__(self, in_channels: int, num_deconv_filters: Sequence[int], num_deconv_kernels: Sequence[int],
                 use_dcn: bool = True) -> None:
        super().__init__()
        if len(num_deconv_filters) != len(num_deconv_kernels):
            raise ValueError(f"CTResNetNeck: num_deconv_filters {list(num_deconv_filters)} and num_deconv_kernels "
                             f"{list(num_deconv_kernels)} need the same length")
        self.use_dcn = use_dcn
        layers: list[nn.Module] = []
        channels = in_channels
        for filters, kernel in zip(num_deconv_filters, num_deconv_kernels):
            layers.append(ConvModule(channels, filters, 3, padding=1, norm_cfg={"type": "BN"},
                                     conv_cfg={"type": "DCNv2"} if use_dcn else None))
            layers.append(ConvModule(filters, filters, kernel, stride=2, padding=(kernel - 2) // 2,
                                     conv_cfg={"type": "deconv"}, norm_cfg={"type": "BN"}))
            channels = filters
        self.deconv_layers = nn.Sequential(*layers)
        self.init_weights()

    def init_weights(self) -> None:
        """Transposed convs start as bilinear upsampling (the same kernel for every channel), as in the paper's code."""
        for module in self.modules():
            if isinstance(module, nn.ConvTranspose2d):
                module.reset_parameters()
                size = module.weight.shape[2]
                f = math.ceil(size / 2)
                c = (2 * f - 1 - f % 2) / (2.0 * f)
                ramp = [1 - abs(i / f - c) for i in range(size)]
                bilinear = module.weight.new_tensor(ramp)[:, None] * module.weight.new_tensor(ramp)[None, :]
                module.weight.data[:, 0] = bilinear
            elif isinstance(module, nn.Conv2d) and not self.use_dcn:
                module.reset_parameters()

    def forward(self, x: Sequence[Tensor]) -> tuple[Tensor]:
        return (self.deconv_layers(x[-1]),)
