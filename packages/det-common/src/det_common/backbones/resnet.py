"""ResNet (He et al. 2016) and ResNetV1d backbones with MMDetection's (= torchvision's) parameter names.

``style="pytorch"`` puts the stride-2 of a bottleneck on its 3x3 conv, ``"caffe"`` on its first
1x1 conv (MMDetection paper `000` Appendix A).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch.utils.checkpoint as checkpoint
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from det_common.backbones.pretrained import LoadReport, load_pretrained
from det_common.layers.conv import build_conv_layer
from det_common.layers.norm import build_norm_layer
from detcore.interfaces import Backbone

_DEFAULT_NORM = {"type": "BN", "requires_grad": True}


class BasicBlock(nn.Module):
    """Two 3x3 convs with an identity shortcut (ResNet-18/34)."""

    norm_follows_conv = True  # each norm is applied to the output of the conv registered before it (fusion.py)

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        with_cp: bool = False,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] = _DEFAULT_NORM,
        dcn: Mapping[str, Any] | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if dcn is not None:
            raise ValueError("BasicBlock does not support dcn; use a Bottleneck depth (50, 101, 152)")
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64")
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, planes, postfix=1)
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, planes, postfix=2)
        self.conv1 = build_conv_layer(
            conv_cfg, inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.add_module(self.norm1_name, norm1)
        self.conv2 = build_conv_layer(conv_cfg, planes, planes, 3, padding=1, bias=False)
        self.add_module(self.norm2_name, norm2)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.with_cp = with_cp

    @property
    def last_norm(self) -> nn.Module:
        return getattr(self, self.norm2_name)

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(getattr(self, self.norm1_name)(self.conv1(x)))
        out = getattr(self, self.norm2_name)(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            out = checkpoint.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 convs (x4 channels) with a shortcut; the 3x3 may be grouped (ResNeXt) or deformable."""

    norm_follows_conv = True  # each norm is applied to the output of the conv registered before it (fusion.py)

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        style: str = "pytorch",
        with_cp: bool = False,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] = _DEFAULT_NORM,
        dcn: Mapping[str, Any] | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if style not in ("pytorch", "caffe"):
            raise ValueError(f"Bottleneck: style must be 'pytorch' or 'caffe', got {style!r}")
        width = self.mid_channels(planes, groups, base_width)
        conv1_stride, conv2_stride = (1, stride) if style == "pytorch" else (stride, 1)
        self.conv2_stride = conv2_stride
        self.norm1_name, norm1 = build_norm_layer(norm_cfg, width, postfix=1)
        self.norm3_name, norm3 = build_norm_layer(norm_cfg, planes * self.expansion, postfix=3)
        self.conv1 = build_conv_layer(conv_cfg, inplanes, width, 1, stride=conv1_stride, bias=False)
        self.add_module(self.norm1_name, norm1)
        use_dcn = dcn is not None and not (dcn.get("fallback_on_stride", False) and conv2_stride > 1)
        self.make_middle(width, conv2_stride, dilation, groups, dcn if use_dcn else conv_cfg, norm_cfg)
        self.conv3 = build_conv_layer(conv_cfg, width, planes * self.expansion, 1, bias=False)
        self.add_module(self.norm3_name, norm3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.with_cp = with_cp

    def mid_channels(self, planes: int, groups: int, base_width: int) -> int:
        """Channels between the two 1x1 convs (ResNeXt widens them per group; Res2Net splits them in scales)."""
        return planes if groups == 1 else (planes * base_width // 64) * groups

    def make_middle(
        self, width: int, stride: int, dilation: int, groups: int, conv_cfg: Mapping[str, Any] | None,
        norm_cfg: Mapping[str, Any],
    ) -> None:
        """The 3x3 conv and its norm between the 1x1 convs (``conv_cfg`` is the DCN / SAC table where one is used)."""
        self.conv2 = build_conv_layer(
            conv_cfg, width, width, 3, stride=stride, padding=dilation, dilation=dilation, groups=groups, bias=False
        )
        self.norm2_name, norm2 = build_norm_layer(norm_cfg, width, postfix=2)
        self.add_module(self.norm2_name, norm2)

    def middle(self, x: Tensor) -> Tensor:
        """``make_middle``'s layers on the first 1x1 conv's output."""
        return self.relu(getattr(self, self.norm2_name)(self.conv2(x)))

    @property
    def last_norm(self) -> nn.Module:
        return getattr(self, self.norm3_name)

    def _residual(self, x: Tensor) -> Tensor:
        out = self.relu(getattr(self, self.norm1_name)(self.conv1(x)))
        out = self.middle(out)
        out = getattr(self, self.norm3_name)(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity

    def forward(self, x: Tensor) -> Tensor:
        if self.with_cp and x.requires_grad:
            out = checkpoint.checkpoint(self._residual, x, use_reentrant=False)
        else:
            out = self._residual(x)
        return self.relu(out)


def make_res_layer(
    block: type[nn.Module],
    inplanes: int,
    planes: int,
    num_blocks: int,
    stride: int,
    dilation: int,
    avg_down: bool,
    conv_cfg: Mapping[str, Any] | None,
    norm_cfg: Mapping[str, Any],
    first_block_kwargs: Mapping[str, Any] | None = None,
    **block_kwargs: Any,
) -> nn.Sequential:
    """One stage: ``num_blocks`` blocks, the first with stride, a projection shortcut ``downsample`` and, where a
    block type treats a stage's first block apart (Res2Net), ``first_block_kwargs``."""
    downsample = None
    out_planes = planes * block.expansion
    if stride != 1 or inplanes != out_planes:
        layers: list[nn.Module] = []
        conv_stride = stride
        if avg_down and stride != 1:
            conv_stride = 1
            layers.append(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False))
        layers.append(build_conv_layer(conv_cfg, inplanes, out_planes, 1, stride=conv_stride, bias=False))
        layers.append(build_norm_layer(norm_cfg, out_planes)[1])
        downsample = nn.Sequential(*layers)
    blocks = [
        block(inplanes, planes, stride=stride, dilation=dilation, downsample=downsample,
              conv_cfg=conv_cfg, norm_cfg=norm_cfg, **block_kwargs, **(first_block_kwargs or {}))
    ]
    for _ in range(1, num_blocks):
        blocks.append(block(out_planes, planes, stride=1, dilation=dilation,
                            conv_cfg=conv_cfg, norm_cfg=norm_cfg, **block_kwargs))
    return nn.Sequential(*blocks)


class ResNet(Backbone):
    """ResNet-18/34/50/101/152 returning the outputs of the stages in ``out_indices`` (C2..C5 by default)."""

    norm_follows_conv = True  # each norm is applied to the output of the conv registered before it (fusion.py)

    arch_settings: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
        18: (BasicBlock, (2, 2, 2, 2)),
        34: (BasicBlock, (3, 4, 6, 3)),
        50: (Bottleneck, (3, 4, 6, 3)),
        101: (Bottleneck, (3, 4, 23, 3)),
        152: (Bottleneck, (3, 8, 36, 3)),
    }

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        stem_channels: int | None = None,
        base_channels: int = 64,
        num_stages: int = 4,
        strides: Sequence[int] = (1, 2, 2, 2),
        dilations: Sequence[int] = (1, 1, 1, 1),
        out_indices: Sequence[int] = (0, 1, 2, 3),
        style: str = "pytorch",
        deep_stem: bool = False,
        avg_down: bool = False,
        frozen_stages: int = -1,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] = _DEFAULT_NORM,
        norm_eval: bool = True,
        dcn: Mapping[str, Any] | None = None,
        stage_with_dcn: Sequence[bool] = (False, False, False, False),
        with_cp: bool = False,
        zero_init_residual: bool = True,
        pretrained: str | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        if depth not in self.arch_settings:
            raise KeyError(f"{type(self).__name__}: invalid depth {depth}; choose from {sorted(self.arch_settings)}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"{type(self).__name__}: num_stages must be in [1, 4], got {num_stages}")
        if len(strides) < num_stages or len(dilations) < num_stages or len(stage_with_dcn) < num_stages:
            raise ValueError(f"{type(self).__name__}: strides, dilations and stage_with_dcn need {num_stages} entries")
        if max(out_indices) >= num_stages:
            raise ValueError(f"{type(self).__name__}: out_indices {tuple(out_indices)} exceed num_stages={num_stages}")
        if style not in ("pytorch", "caffe"):
            raise ValueError(f"{type(self).__name__}: style must be 'pytorch' or 'caffe', got {style!r}")
        self.depth = depth
        self.out_indices = tuple(out_indices)
        self.style = style
        self.deep_stem = deep_stem
        self.avg_down = avg_down
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.zero_init_residual = zero_init_residual
        self.norm_cfg = dict(norm_cfg)
        stem_channels = base_channels if stem_channels is None else stem_channels
        block, stage_blocks = self.arch_settings[depth]
        self.block = block
        self.stage_blocks = stage_blocks[:num_stages]

        self._make_stem(conv_cfg, in_channels, stem_channels)
        inplanes = stem_channels
        self.res_layers: list[str] = []
        stage_out: list[int] = []
        for i, num_blocks in enumerate(self.stage_blocks):
            planes = base_channels * 2**i
            layer = self.make_stage(
                i, block, inplanes, planes, num_blocks, stride=strides[i], dilation=dilations[i], avg_down=avg_down,
                conv_cfg=conv_cfg, norm_cfg=self.norm_cfg, style=style, with_cp=with_cp,
                dcn=dcn if stage_with_dcn[i] else None, groups=groups, base_width=base_width,
            )
            inplanes = planes * block.expansion
            name = f"layer{i + 1}"
            self.add_module(name, layer)
            self.res_layers.append(name)
            stage_out.append(inplanes)
        self.out_channels = [stage_out[i] for i in self.out_indices]

        self.init_weights()
        self.load_report: LoadReport | None = None
        if pretrained is not None:
            self.load_report = load_pretrained(self, pretrained, prefix="backbone.")
        self._freeze_stages()

    def make_stage(self, index: int, block: type[nn.Module], *args: Any, **kwargs: Any) -> nn.Sequential:
        """Stage ``index`` (0-based): ``make_res_layer``'s blocks (DetectoRS changes its blocks here)."""
        return make_res_layer(block, *args, **kwargs)

    def _make_stem(self, conv_cfg: Mapping[str, Any] | None, in_channels: int, stem_channels: int) -> None:
        if self.deep_stem:
            half = stem_channels // 2
            self.stem = nn.Sequential(
                build_conv_layer(conv_cfg, in_channels, half, 3, stride=2, padding=1, bias=False),
                build_norm_layer(self.norm_cfg, half)[1],
                nn.ReLU(inplace=True),
                build_conv_layer(conv_cfg, half, half, 3, stride=1, padding=1, bias=False),
                build_norm_layer(self.norm_cfg, half)[1],
                nn.ReLU(inplace=True),
                build_conv_layer(conv_cfg, half, stem_channels, 3, stride=1, padding=1, bias=False),
                build_norm_layer(self.norm_cfg, stem_channels)[1],
                nn.ReLU(inplace=True),
            )
        else:
            self.conv1 = build_conv_layer(conv_cfg, in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.norm1_name, norm1 = build_norm_layer(self.norm_cfg, stem_channels, postfix=1)
            self.add_module(self.norm1_name, norm1)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def init_weights(self) -> None:
        """Kaiming (fan_out) convs, unit norms; last norm of each block zero when ``zero_init_residual``."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d) and not name.endswith("conv_offset"):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (_BatchNorm, nn.GroupNorm)) and module.weight is not None:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    norm = module.last_norm
                    if getattr(norm, "weight", None) is not None:
                        nn.init.zeros_(norm.weight)

    def _stem_modules(self) -> list[nn.Module]:
        return [self.stem] if self.deep_stem else [self.conv1, getattr(self, self.norm1_name)]

    def _freeze_stages(self) -> None:
        """Stop gradients and statistics updates in the stem (stage 0) and stages 1..frozen_stages."""
        frozen: list[nn.Module] = []
        if self.frozen_stages >= 0:
            frozen.extend(self._stem_modules())
        for i in range(1, self.frozen_stages + 1):
            frozen.append(getattr(self, f"layer{i}"))
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> "ResNet":
        """Train mode, keeping frozen stages and (with ``norm_eval``) every BatchNorm in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        if self.deep_stem:
            x = self.stem(images)
        else:
            x = self.relu(getattr(self, self.norm1_name)(self.conv1(images)))
        x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


class ResNetV1d(ResNet):
    """ResNet-D (He et al. 2019): three 3x3 stem convs and average-pool shortcuts."""

    def __init__(self, depth: int, **kwargs: Any) -> None:
        kwargs.setdefault("deep_stem", True)
        kwargs.setdefault("avg_down", True)
        super().__init__(depth, **kwargs)
