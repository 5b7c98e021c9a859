"""DetectoRS's ResNet (Qiao et al. 2021, "DetectoRS"): switchable atrous convolutions in chosen stages and,
for the recursive feature pyramid, a second input per stage (the pyramid's features fed back).

The blocks are det-common's Bottleneck; SAC replaces ``conv2`` in the stages of ``stage_with_sac`` (built
like a DCN, from the ``sac`` table) and a 1x1 ``rfp_conv`` in each stage's first block (stages 2-4) adds the
fed-back features before the block's last ReLU. Weight names follow MMDetection's ``DetectoRS_ResNet``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from det_common.backbones.resnet import Bottleneck, ResNet
from det_common.layers.sac import SAConv2d


class DetectoRSBottleneck(Bottleneck):
    """A Bottleneck that may also take the recursive feature pyramid's features (``rfp_forward``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rfp_conv: nn.Conv2d | None = None

    def add_rfp_input(self, rfp_inplanes: int) -> None:
        """A zero-initialised 1x1 ``rfp_conv`` from ``rfp_inplanes`` channels to the block's output."""
        out_channels = self.last_norm.num_features
        self.rfp_conv = nn.Conv2d(rfp_inplanes, out_channels, 1, bias=True)
        nn.init.zeros_(self.rfp_conv.weight)
        nn.init.zeros_(self.rfp_conv.bias)

    def rfp_forward(self, x: Tensor, rfp_feat: Tensor | None) -> Tensor:
        out = self._residual(x)
        if self.rfp_conv is not None and rfp_feat is not None:
            out = out + self.rfp_conv(rfp_feat)
        return self.relu(out)


class DetectoRSResNet(ResNet):
    """ResNet-50/101/152 with SAC (``sac``, ``stage_with_sac``), an RFP input (``rfp_inplanes``) and, with
    ``output_img``, the input image as the first output (the RFP neck runs this backbone again on it)."""

    arch_settings = {depth: (DetectoRSBottleneck, blocks) for depth, (block, blocks) in ResNet.arch_settings.items()
                     if block is Bottleneck}

    def __init__(
        self,
        depth: int,
        sac: Mapping[str, Any] | None = None,
        stage_with_sac: Sequence[bool] = (False, False, False, False),
        rfp_inplanes: int | None = None,
        output_img: bool = False,
        **kwargs: Any,
    ) -> None:
        self.sac = dict(sac) if sac is not None else None
        self.stage_with_sac = tuple(stage_with_sac)
        self.rfp_inplanes = rfp_inplanes
        self.output_img = output_img
        super().__init__(depth, **kwargs)

    def make_stage(self, index: int, block: type[nn.Module], *args: Any, **kwargs: Any) -> nn.Sequential:
        if self.sac is not None and self.stage_with_sac[index]:
            kwargs["dcn"] = self.sac
        layer = super().make_stage(index, block, *args, **kwargs)
        if self.rfp_inplanes and index > 0:
            layer[0].add_rfp_input(self.rfp_inplanes)
        return layer

    def init_weights(self) -> None:
        """ResNet's init, then SAC starts as a plain convolution and the RFP inputs at zero."""
        super().init_weights()
        for module in self.modules():
            if isinstance(module, SAConv2d):
                module.reset_switch()
            elif isinstance(module, DetectoRSBottleneck) and module.rfp_conv is not None:
                nn.init.zeros_(module.rfp_conv.weight)
                nn.init.zeros_(module.rfp_conv.bias)

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        outs = super().forward(images)
        return (images, *outs) if self.output_img else outs

    def rfp_forward(self, images: Tensor, rfp_feats: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """The stages' outputs with ``rfp_feats[i]`` fed into stage ``i``'s first block (``i`` >= 1)."""
        x = self.stem(images) if self.deep_stem else self.relu(getattr(self, self.norm1_name)(self.conv1(images)))
        x = self.maxpool(x)
        outs = []
        for i, name in enumerate(self.res_layers):
            for j, block in enumerate(getattr(self, name)):
                x = block.rfp_forward(x, rfp_feats[i] if i > 0 and j == 0 else None)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
