"""SCNet's mask head (Vu et al. 2021, "SCNet"): an FCN mask head whose 3x3 convs are paired into simplified
residual blocks (``conv_to_res``), so its tower can be deep (12 convs in SCNet's configs)."""

from __future__ import annotations

from typing import Any

from det_common.heads.roi.fcn_mask_head import FCNMaskHead

from det_cascade.layers.simplified_basic_block import simplified_res_layer


class SCNetMaskHead(FCNMaskHead):
    """``FCNMaskHead``; with ``conv_to_res`` its ``convs`` are ``num_convs // 2`` simplified residual blocks
    (weight names ``convs.<block>.conv1/conv2.*``)."""

    def __init__(self, conv_to_res: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conv_to_res = conv_to_res
        if conv_to_res:
            if kwargs.get("conv_kernel_size", 3) != 3:
                raise ValueError("SCNetMaskHead: conv_to_res needs conv_kernel_size = 3")
            self.convs = simplified_res_layer(
                "SCNetMaskHead", kwargs.get("num_convs", 4), kwargs.get("in_channels", 256),
                kwargs.get("conv_out_channels", 256), kwargs.get("conv_cfg"), kwargs.get("norm_cfg"),
            )
