"""DetectoRS's convolutions (Qiao et al. 2021, "DetectoRS: Detecting Objects with Recursive Feature Pyramid
and Switchable Atrous Convolution"): weight-standardised convolution with a learned affine (ConvAWS) and the
switchable atrous convolution built on it (SAC). Parameter and buffer names follow MMCV, so checkpoints load.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detcore import ops


class ConvAWS2d(nn.Conv2d):
    """Conv2d whose weight is standardised per output channel (zero mean, unit std) and then scaled by
    ``weight_gamma`` and shifted by ``weight_beta`` (buffers, MMCV's layout) before convolving."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("weight_gamma", torch.ones(self.out_channels, 1, 1, 1))
        self.register_buffer("weight_beta", torch.zeros(self.out_channels, 1, 1, 1))

    @staticmethod
    def filter_statistics(weight: Tensor) -> tuple[Tensor, Tensor]:
        """Per output channel ``mean`` and ``sqrt(var + 1e-5)`` (unbiased variance, as MMCV), shaped (C, 1, 1, 1)."""
        flat = weight.flatten(1)
        mean = flat.mean(dim=1).view(-1, 1, 1, 1)
        std = torch.sqrt(flat.var(dim=1) + 1e-5).view(-1, 1, 1, 1)
        return mean, std

    def standardized_weight(self, weight: Tensor) -> Tensor:
        """``gamma * (w - mean) / std + beta`` per output channel."""
        mean, std = self.filter_statistics(weight)
        return self.weight_gamma * ((weight - mean) / std) + self.weight_beta

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any],
                              strict: bool, missing_keys: list[str], unexpected_keys: list[str],
                              error_msgs: list[str]) -> None:
        """Weights of a plain convolution (an ImageNet ResNet's) load as that same convolution: when the state dict
        has ``weight`` but no ``weight_gamma`` / ``weight_beta``, they are set to the loaded filters' std and mean,
        so standardising then gives the filters back. MMCV does the same, which is how MMDetection's DetectoRS
        starts from ``torchvision://resnet50``; without it the pretrained filters would all get unit std."""
        recover = prefix + "weight" in state_dict and not any(
            prefix + name in state_dict for name in ("weight_gamma", "weight_beta"))
        local_missing: list[str] = []
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, local_missing, unexpected_keys,
                                      error_msgs)
        if recover:
            with torch.no_grad():
                mean, std = self.filter_statistics(self.weight)
                self.weight_beta.copy_(mean)
                self.weight_gamma.copy_(std)
            local_missing = [k for k in local_missing if k not in (prefix + "weight_gamma", prefix + "weight_beta")]
        missing_keys.extend(local_missing)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.standardized_weight(self.weight), self.bias)


class SAConv2d(ConvAWS2d):
    """Switchable atrous convolution: a per-pixel ``switch`` (from 5x5-averaged input) mixes the same
    standardised kernel at dilation ``d`` and, plus ``weight_diff``, at dilation ``3d``; global context
    (1x1 ``pre_context`` / ``post_context`` on the pooled map) is added before and after. With
    ``use_deform`` both branches are deformable, with offsets from ``offset_s`` / ``offset_l``. The
    convolution's own bias is not used (DetectoRS's backbone convs have none)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bias: bool = True, use_deform: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        if use_deform and groups != 1:
            raise ValueError("SAConv2d: use_deform supports groups = 1 only")
        self.use_deform = use_deform
        self.switch = nn.Conv2d(in_channels, 1, kernel_size=1, stride=stride, bias=True)
        self.weight_diff = nn.Parameter(torch.zeros_like(self.weight))
        self.pre_context = nn.Conv2d(in_channels, in_channels, kernel_size=1, bias=True)
        self.post_context = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=True)
        self.offset_s = self.offset_l = None
        if use_deform:
            positions = 2 * self.kernel_size[0] * self.kernel_size[1]
            self.offset_s = nn.Conv2d(in_channels, positions, kernel_size=3, padding=1, stride=stride, bias=True)
            self.offset_l = nn.Conv2d(in_channels, positions, kernel_size=3, padding=1, stride=stride, bias=True)
        self.reset_switch()

    def reset_switch(self) -> None:
        """Start as the plain small-dilation convolution: switch 1, no context, no offsets, no weight difference."""
        for module in (self.switch, self.pre_context, self.post_context, self.offset_s, self.offset_l):
            if module is not None:
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.ones_(self.switch.bias)
        nn.init.zeros_(self.weight_diff)

    def branch(self, x: Tensor, weight: Tensor, scale: int, offset_conv: nn.Module | None, context: Tensor) -> Tensor:
        """One dilation branch: the kernel at ``scale`` times the padding and dilation (deformable with offsets)."""
        padding = tuple(scale * p for p in self.padding)
        dilation = tuple(scale * d for d in self.dilation)
        if offset_conv is not None:
            return ops.deform_conv2d(x, offset_conv(context), weight, None, self.stride, padding, dilation)
        return F.conv2d(x, weight, None, self.stride, padding, dilation, self.groups)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pre_context(F.adaptive_avg_pool2d(x, 1))
        local = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel_size=5, stride=1)
        switch = self.switch(local)
        weight = self.standardized_weight(self.weight)
        small = self.branch(x, weight, 1, self.offset_s, local)
        large = self.branch(x, weight + self.weight_diff, 3, self.offset_l, local)
        out = switch * small + (1 - switch) * large
        return out + self.post_context(F.adaptive_avg_pool2d(out, 1))
