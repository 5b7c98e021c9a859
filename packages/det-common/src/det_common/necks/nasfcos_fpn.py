"""The feature pyramid found by NAS-FCOS (Wang et al. 2020, "NAS-FCOS: Fast Neural Architecture Search for
Object Detection"): seven searched concatenation cells over C3-C5 instead of FPN's top-down path."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from det_common.layers.conv_module import ConvModule
from det_common.layers.merge_cells import ConcatCell
from detcore.interfaces import Neck

_BN = {"type": "BN"}
#: the searched cells in order: name (MMDetection's, "c<i><j>[_k]"), the two feature indices they merge, whether each
#: input first passes a 3x3 conv. Features 0-2 are the adapted C3-C5; cell k appends feature 3 + k.
CELLS: tuple[tuple[str, int, int, bool, bool], ...] = (
    ("c22_1", 2, 2, True, True),
    ("c22_2", 2, 2, True, True),
    ("c32", 3, 2, True, False),
    ("c02", 0, 2, True, False),
    ("c42", 4, 2, True, True),
    ("c36", 3, 6, True, True),
    ("c61", 6, 1, True, True),
)
#: (feature, backbone input) per output: P3-P5 are features 9, 8 and 7, each plus feature 5, at C3-C5's sizes
OUTPUTS = ((9, 0), (8, 1), (7, 2))


class NASFCOS_FPN(Neck):  # noqa: N801 (MMDetection's config name)
    """NAS-FCOS's pyramid: 1x1 ``adapt_convs`` (conv, BN, ReLU) bring C3-C5 to ``out_channels``; the cells of
    ``CELLS`` (``fpn.<name>``: ConcatCell with ``conv_cfg`` / ``norm_cfg`` 3x3 input convs and a BN-ReLU-grouped 1x1
    output conv) build new features; P3-P5 add feature 5 (bilinearly resized) to features 9, 8, 7 and are resized
    to C3-C5's sizes. ``extra_downsamples`` (stride-2 3x3 convs, a ReLU before all but the first) add P6, P7.
    The searched graph uses exactly three inputs, ``start_level`` to the last.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 1,
        end_level: int = -1,
        add_extra_convs: bool = False,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        end = len(self.in_channels) if end_level in (-1, len(self.in_channels) - 1) else end_level + 1
        if end - start_level != 3:
            raise ValueError(
                f"NASFCOS_FPN: the searched pyramid merges exactly 3 inputs, got levels {start_level}..{end - 1} "
                f"of in_channels {self.in_channels} (set start_level / end_level)"
            )
        if num_outs < 3:
            raise ValueError(f"NASFCOS_FPN: num_outs must be at least 3 (P3-P5), got {num_outs}")
        self.add_extra_convs = add_extra_convs
        self.adapt_convs = nn.ModuleList(
            ConvModule(self.in_channels[i], out_channels, 1, bias=False, norm_cfg=_BN,
                       act_cfg={"type": "ReLU", "inplace": False})
            for i in range(start_level, end)
        )
        self.fpn = nn.ModuleDict(
            {
                name: ConcatCell(
                    out_channels, out_channels, with_out_conv=True,
                    out_conv_cfg={"kernel_size": 1, "padding": 0, "bias": False, "groups": out_channels},
                    out_norm_cfg=_BN, out_conv_order=("norm", "act", "conv"),
                    with_input1_conv=conv1, with_input2_conv=conv2,
                    input_conv_cfg=conv_cfg, input_norm_cfg=norm_cfg, upsample_mode="nearest",
                )
                for name, _, _, conv1, conv2 in CELLS
            }
        )
        self.extra_downsamples = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, stride=2, padding=1, order=("act", "norm", "conv"),
                       act_cfg=None if i == 0 else {"type": "ReLU", "inplace": False})
            for i in range(num_outs - 3)
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Caffe2-style Xavier (uniform Kaiming, a = 1, fan in) for the adapt and extra convs, zero biases."""
        for module in [*self.adapt_convs.modules(), *self.extra_downsamples.modules()]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1, mode="fan_in", nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        used = list(inputs[self.start_level:self.start_level + 3])
        feats = [conv(x) for conv, x in zip(self.adapt_convs, used)]
        for name, first, second, _, _ in CELLS:
            feats.append(self.fpn[name](feats[first], feats[second]))
        outs = []
        for feat, level in OUTPUTS:
            merged = feats[feat] + F.interpolate(feats[5], size=feats[feat].shape[-2:], mode="bilinear",
                                                 align_corners=False)
            outs.append(F.interpolate(merged, size=used[level].shape[-2:], mode="bilinear", align_corners=False))
        for conv in self.extra_downsamples:
            outs.append(conv(outs[-1]))
        return tuple(outs)
