"""TinyConvBackbone: a small strided-conv backbone, the component this template registers."""

from __future__ import annotations

from torch import Tensor, nn

from detcore.interfaces import Backbone


class TinyConvBackbone(Backbone):
    """``num_stages`` conv-BN-ReLU stages, each halving resolution; returns every stage's map."""

    def __init__(self, in_channels: int = 3, base_channels: int = 16, num_stages: int = 4) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"TinyConvBackbone: num_stages must be >= 1, got {num_stages}")
        self.stages = nn.ModuleList()
        channels = in_channels
        self.out_channels = []
        for i in range(num_stages):
            out = base_channels * 2**i
            self.stages.append(nn.Sequential(
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ))
            self.out_channels.append(out)
            channels = out

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        feats = []
        x = images
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return tuple(feats)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["TinyConvBackbone", "count_parameters"]
