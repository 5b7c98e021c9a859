"""Feature Pyramid Network (Lin et al. 2017) with MMDetection's parameter names and extra-level options."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from det_common.layers.conv_module import ConvModule
from det_common.layers.init import xavier_init
from detcore.interfaces import Neck

EXTRA_CONV_SOURCES = ("on_input", "on_lateral", "on_output")


class FPN(Neck):
    """Top-down pyramid: 1x1 ``lateral_convs``, nearest upsampling and sum, 3x3 ``fpn_convs``.

    Levels beyond the backbone's come from stride-2 max pooling of the last output
    (``add_extra_convs=False``, Faster R-CNN's P6) or from stride-2 3x3 convs appended to
    ``fpn_convs`` applied to the last input C5 ("on_input", RetinaNet's P6), the last lateral
    ("on_lateral") or the last output P5 ("on_output"); ``True`` means "on_input".
    ``relu_before_extra_convs`` applies a ReLU before every extra conv after the first.
    ``end_level`` is the last input level used (inclusive; -1 = last).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        act_cfg: Mapping[str, Any] | None = None,
        upsample_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_ins = len(self.in_channels)
        self.num_outs = num_outs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.upsample_cfg = dict(upsample_cfg) if upsample_cfg is not None else {"mode": "nearest"}
        if end_level == -1 or end_level == self.num_ins - 1:
            self.backbone_end_level = self.num_ins
            if num_outs < self.num_ins - start_level:
                raise ValueError(f"FPN: num_outs={num_outs} is fewer than the {self.num_ins - start_level} used inputs")
        else:
            if not start_level <= end_level < self.num_ins:
                raise ValueError(f"FPN: need start_level <= end_level < {self.num_ins}, got {start_level}, {end_level}")
            self.backbone_end_level = end_level + 1
            if num_outs != end_level - start_level + 1:
                raise ValueError(f"FPN: num_outs must be end_level - start_level + 1 = {end_level - start_level + 1}")
        self.start_level = start_level
        self.end_level = end_level
        if add_extra_convs is True:
            add_extra_convs = "on_input"
        if add_extra_convs is not False and add_extra_convs not in EXTRA_CONV_SOURCES:
            raise ValueError(f"FPN: add_extra_convs must be a bool or one of {EXTRA_CONV_SOURCES}, got {add_extra_convs!r}")
        self.add_extra_convs: bool | str = add_extra_convs

        self.lateral_convs = nn.ModuleList()
        self.fpn_convs = nn.ModuleList()
        for i in range(start_level, self.backbone_end_level):
            self.lateral_convs.append(
                ConvModule(self.in_channels[i], out_channels, 1, conv_cfg=conv_cfg,
                           norm_cfg=None if no_norm_on_lateral else norm_cfg, act_cfg=act_cfg, inplace=False)
            )
            self.fpn_convs.append(
                ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                           norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
            )
        extra_levels = num_outs - self.backbone_end_level + start_level
        if self.add_extra_convs and extra_levels >= 1:
            for i in range(extra_levels):
                if i == 0 and self.add_extra_convs == "on_input":
                    extra_in = self.in_channels[self.backbone_end_level - 1]
                else:
                    extra_in = out_channels
                self.fpn_convs.append(
                    ConvModule(extra_in, out_channels, 3, stride=2, padding=1, conv_cfg=conv_cfg,
                               norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False)
                )
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform convs, zero biases (as MMDetection's FPN)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                xavier_init(module, distribution="uniform")

    def _check_inputs(self, feats: Sequence[Tensor]) -> None:
        if len(feats) != self.num_ins:
            raise ValueError(f"{type(self).__name__}: expected {self.num_ins} input levels, got {len(feats)}")

    def _top_down(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Lateral projections with coarser levels upsampled and added, coarse to fine."""
        laterals = [conv(feats[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            if "scale_factor" in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        return laterals

    def _add_extra_levels(self, outs: list[Tensor], feats: Sequence[Tensor], laterals: list[Tensor]) -> list[Tensor]:
        """Append levels until ``num_outs``: max pooling, or the extra convs of ``fpn_convs``."""
        used = len(laterals)
        if self.num_outs <= len(outs):
            return outs
        if not self.add_extra_convs:
            while len(outs) < self.num_outs:
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            return outs
        if self.add_extra_convs == "on_input":
            source = feats[self.backbone_end_level - 1]
        elif self.add_extra_convs == "on_lateral":
            source = laterals[-1]
        else:
            source = outs[-1]
        outs.append(self.fpn_convs[used](source))
        for i in range(used + 1, self.num_outs):
            prev = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
            outs.append(self.fpn_convs[i](prev))
        return outs

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, ...]:
        self._check_inputs(feats)
        laterals = self._top_down(feats)
        outs = [self.fpn_convs[i](laterals[i]) for i in range(len(laterals))]
        return tuple(self._add_extra_levels(outs, feats, laterals))
