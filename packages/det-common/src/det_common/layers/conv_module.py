"""ConvModule: conv / norm / activation block with MMDetection's submodule names (``conv``, ``bn``/``gn``, ``activate``)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from det_common.layers.activation import build_activation_layer
from det_common.layers.conv import build_conv_layer
from det_common.layers.norm import build_norm_layer

_DEFAULT_ACT = {"type": "ReLU"}


class ConvModule(nn.Module):
    """A convolution followed (in ``order``) by an optional norm and an optional activation.

    ``bias="auto"`` gives the conv a bias only when there is no norm. The norm is stored
    under its abbreviation (``bn`` or ``gn``) so MMDetection checkpoints load unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool | str = "auto",
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = _DEFAULT_ACT,
        inplace: bool = True,
        order: Sequence[str] = ("conv", "norm", "act"),
    ) -> None:
        super().__init__()
        order = tuple(order)
        if sorted(order) != ["act", "conv", "norm"]:
            raise ValueError(f"ConvModule: order must be a permutation of ('conv', 'norm', 'act'), got {order}")
        if bias != "auto" and not isinstance(bias, bool):
            raise ValueError(f"ConvModule: bias must be 'auto' or a bool, got {bias!r}")
        self.order = order
        self.with_norm = norm_cfg is not None
        self.with_activation = act_cfg is not None
        self.with_bias = (not self.with_norm) if bias == "auto" else bias
        self.conv = build_conv_layer(
            conv_cfg,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=self.with_bias,
        )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm_name: str | None = None
        if norm_cfg is not None:
            norm_channels = out_channels if order.index("norm") > order.index("conv") else in_channels
            self.norm_name, norm = build_norm_layer(norm_cfg, norm_channels)
            self.add_module(self.norm_name, norm)
        if act_cfg is not None:
            self.activate = build_activation_layer(act_cfg, inplace=inplace)
        self._act_cfg = dict(act_cfg) if act_cfg is not None else None
        self.init_weights()

    @property
    def norm(self) -> nn.Module | None:
        """The normalization layer (whatever its registered name), or None."""
        return getattr(self, self.norm_name) if self.norm_name else None

    def init_weights(self) -> None:
        """Kaiming (fan_out) init of a plain conv for the following activation; norm weight 1, bias 0."""
        if isinstance(self.conv, nn.Conv2d):
            if self._act_cfg is not None and self._act_cfg.get("type") == "LeakyReLU":
                nonlinearity, a = "leaky_relu", self._act_cfg.get("negative_slope", 0.01)
            else:
                nonlinearity, a = "relu", 0.0
            nn.init.kaiming_normal_(self.conv.weight, a=a, mode="fan_out", nonlinearity=nonlinearity)
            if self.conv.bias is not None:
                nn.init.zeros_(self.conv.bias)
        norm = self.norm
        if norm is not None and getattr(norm, "weight", None) is not None:
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def forward(self, x: Tensor, activate: bool = True, norm: bool = True) -> Tensor:
        for layer in self.order:
            if layer == "conv":
                x = self.conv(x)
            elif layer == "norm" and norm and self.with_norm:
                x = self.norm(x)
            elif layer == "act" and activate and self.with_activation:
                x = self.activate(x)
        return x
