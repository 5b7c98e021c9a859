"""SCNet's feature relay (Vu et al. 2021, "SCNet"): the box head's shared fc features of a RoI, mapped by one
fc to a small feature map and upsampled to the mask branch's RoI size, are added to the mask features."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class FeatureRelayHead(nn.Module):
    """(K, in_channels) box features -> (K, out_conv_channels, S * scale_factor, S * scale_factor) mask features,
    S = ``roi_feat_size`` (bilinear upsampling, corners aligned)."""

    def __init__(
        self, in_channels: int = 1024, out_conv_channels: int = 256, roi_feat_size: int = 7, scale_factor: int = 2
    ) -> None:
        super().__init__()
        if not isinstance(roi_feat_size, int):
            raise ValueError(f"FeatureRelayHead: roi_feat_size must be an int, got {roi_feat_size!r}")
        self.out_conv_channels = out_conv_channels
        self.roi_feat_size = roi_feat_size
        self.scale_factor = scale_factor
        self.fc = nn.Linear(in_channels, roi_feat_size**2 * out_conv_channels)
        nn.init.kaiming_normal_(self.fc.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.fc.bias, 0.0)

    def forward(self, x: Tensor) -> Tensor:
        size = self.roi_feat_size
        x = self.fc(x).reshape(x.shape[0], self.out_conv_channels, size, size)
        if x.shape[0] == 0:
            return x.new_zeros((0, self.out_conv_channels, size * self.scale_factor, size * self.scale_factor))
        return F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=True)
