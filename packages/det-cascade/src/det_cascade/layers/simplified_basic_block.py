"""SCNet's simplified residual block (Vu et al. 2021, "SCNet: Training Inference Sample Consistency for
Instance Segmentation"): a ResNet basic block whose norms are optional and which has no ReLU after the sum.

SCNet's mask, semantic and global-context heads group their 3x3 convs in pairs into these blocks.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from det_common.layers import build_conv_layer, build_norm_layer


class SimplifiedBasicBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with a norm after each conv when ``norm_cfg`` is given (then convs have
    no bias). Weight names ``conv1.*``, ``conv2.*`` (and ``norm1`` / ``norm2``'s) as MMDetection's."""

    def __init__(
        self,
        channels: int,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        bias = norm_cfg is None
        self.conv1 = build_conv_layer(conv_cfg, channels, channels, 3, padding=1, bias=bias)
        self.conv2 = build_conv_layer(conv_cfg, channels, channels, 3, padding=1, bias=bias)
        self.norm1_name = self.norm2_name = None
        if norm_cfg is not None:
            self.norm1_name, norm1 = build_norm_layer(norm_cfg, channels, postfix=1)
            self.norm2_name, norm2 = build_norm_layer(norm_cfg, channels, postfix=2)
            self.add_module(self.norm1_name, norm1)
            self.add_module(self.norm2_name, norm2)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        if self.norm1_name is not None:
            out = getattr(self, self.norm1_name)(out)
        out = self.conv2(out.relu())
        if self.norm2_name is not None:
            out = getattr(self, self.norm2_name)(out)
        return out + x


def simplified_res_layer(
    owner: str,
    num_convs: int,
    in_channels: int,
    out_channels: int,
    conv_cfg: Mapping[str, Any] | None = None,
    norm_cfg: Mapping[str, Any] | None = None,
) -> nn.Sequential:
    """``num_convs // 2`` simplified blocks in a row (SCNet's ``conv_to_res``); ``owner`` names the head in errors."""
    if in_channels != out_channels:
        raise ValueError(
            f"{owner}: conv_to_res keeps the width, so in_channels ({in_channels}) must equal "
            f"conv_out_channels ({out_channels}); set them equal or conv_to_res = false"
        )
    return nn.Sequential(*(SimplifiedBasicBlock(out_channels, conv_cfg, norm_cfg) for _ in range(num_convs // 2)))
