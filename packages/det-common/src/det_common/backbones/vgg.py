"""VGG (Simonyan & Zisserman 2015) with MMDetection's ``features.<i>`` names, including SSD's variant."""

from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from det_common.backbones.pretrained import LoadReport, load_pretrained
from detcore.interfaces import Backbone


class VGG(Backbone):
    """VGG-11/13/16/19 as one ``features`` Sequential; outputs per stage or at ``out_feature_indices``.

    SSD (Liu et al. 2016) uses ``depth=16, with_last_pool=False, ceil_mode=True, ssd_fc=True,
    out_feature_indices=(22, 34)``: ``ssd_fc`` appends pool5 (3x3, stride 1), the dilated conv6
    and the 1x1 conv7 that replace the fully connected layers; 22 is conv4_3's ReLU, 34 conv7's.
    """

    arch_settings = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}

    def __init__(
        self,
        depth: int = 16,
        with_bn: bool = False,
        num_stages: int = 5,
        dilations: Sequence[int] = (1, 1, 1, 1, 1),
        out_indices: Sequence[int] = (0, 1, 2, 3, 4),
        frozen_stages: int = -1,
        norm_eval: bool = False,
        ceil_mode: bool = False,
        with_last_pool: bool = True,
        ssd_fc: bool = False,
        out_feature_indices: Sequence[int] | None = None,
        in_channels: int = 3,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if depth not in self.arch_settings:
            raise KeyError(f"VGG: invalid depth {depth}; choose from {sorted(self.arch_settings)}")
        if not 1 <= num_stages <= 5:
            raise ValueError(f"VGG: num_stages must be in [1, 5], got {num_stages}")
        self.stage_blocks = self.arch_settings[depth][:num_stages]
        self.out_indices = tuple(out_indices)
        self.out_feature_indices = tuple(out_feature_indices) if out_feature_indices is not None else None
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        layers: list[nn.Module] = []
        channels_after: list[int] = []  # channels of the output of every layer in `features`
        self.stage_ranges: list[tuple[int, int]] = []
        channels = in_channels
        for i, num_convs in enumerate(self.stage_blocks):
            start = len(layers)
            out = 64 * 2**i if i < 4 else 512
            for _ in range(num_convs):
                layers.append(nn.Conv2d(channels, out, 3, padding=dilations[i], dilation=dilations[i]))
                channels_after.append(out)
                if with_bn:
                    layers.append(nn.BatchNorm2d(out))
                    channels_after.append(out)
                layers.append(nn.ReLU(inplace=True))
                channels_after.append(out)
                channels = out
            if i != len(self.stage_blocks) - 1 or with_last_pool:
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil_mode))
                channels_after.append(channels)
            self.stage_ranges.append((start, len(layers)))
        if ssd_fc:
            layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))
            layers.append(nn.Conv2d(channels, 1024, kernel_size=3, padding=6, dilation=6))
            layers.append(nn.ReLU(inplace=True))
            layers.append(nn.Conv2d(1024, 1024, kernel_size=1))
            layers.append(nn.ReLU(inplace=True))
            channels_after.extend([channels, 1024, 1024, 1024, 1024])
        self.features = nn.Sequential(*layers)

        if self.out_feature_indices is not None:
            if max(self.out_feature_indices) >= len(layers):
                raise ValueError(f"VGG: out_feature_indices {self.out_feature_indices} exceed {len(layers)} layers")
            self.out_channels = [channels_after[i] for i in self.out_feature_indices]
        else:
            if max(self.out_indices) >= num_stages:
                raise ValueError(f"VGG: out_indices {self.out_indices} exceed num_stages={num_stages}")
            self.out_channels = [channels_after[self.stage_ranges[i][1] - 1] for i in self.out_indices]

        self.init_weights()
        self.load_report: LoadReport | None = None
        if pretrained is not None:
            self.load_report = load_pretrained(self, pretrained, prefix="backbone.")
        self._freeze_stages()

    def init_weights(self) -> None:
        """Kaiming (fan_out) convs and unit BatchNorms."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _freeze_stages(self) -> None:
        """Freeze the layers of stages 0..frozen_stages-1."""
        for i in range(min(self.frozen_stages, len(self.stage_ranges))):
            start, end = self.stage_ranges[i]
            for j in range(start, end):
                module = self.features[j]
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> "VGG":
        """Train mode, keeping frozen stages and (with ``norm_eval``) BatchNorms in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outs = []
        x = images
        if self.out_feature_indices is not None:
            for i, layer in enumerate(self.features):
                x = layer(x)
                if i in self.out_feature_indices:
                    outs.append(x)
            return tuple(outs)
        for i, (start, end) in enumerate(self.stage_ranges):
            for j in range(start, end):
                x = self.features[j](x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
