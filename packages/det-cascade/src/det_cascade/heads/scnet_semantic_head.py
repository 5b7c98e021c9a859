"""SCNet's semantic head (Vu et al. 2021, "SCNet"): HTC's fused semantic head whose 3x3 convs are paired
into simplified residual blocks (``conv_to_res``)."""

from __future__ import annotations

from typing import Any

from det_cascade.heads.fused_semantic_head import FusedSemanticHead
from det_cascade.layers.simplified_basic_block import simplified_res_layer


class SCNetSemanticHead(FusedSemanticHead):
    """``FusedSemanticHead``; with ``conv_to_res`` its ``convs`` are ``num_convs // 2`` simplified residual blocks."""

    def __init__(self, conv_to_res: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv_to_res = conv_to_res
        if conv_to_res:
            self.convs = simplified_res_layer(
                "SCNetSemanticHead", kwargs.get("num_convs", 4), kwargs.get("in_channels", 256),
                kwargs.get("conv_out_channels", 256), kwargs.get("conv_cfg"), kwargs.get("norm_cfg"),
            )
