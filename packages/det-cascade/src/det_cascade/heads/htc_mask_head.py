"""HTC's mask head (Chen et al. 2019, "Hybrid Task Cascade"): an FCN mask head that also takes the
previous stage's mask features (the mask information flow), added through a 1x1 ``conv_res``."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from det_common.heads.roi.fcn_mask_head import FCNMaskHead
from det_common.layers import ConvModule


class HTCMaskHead(FCNMaskHead):
    """``FCNMaskHead`` whose conv tower starts from ``roi_feats + conv_res(res_feat)`` when given the previous
    stage's tower output ``res_feat``; ``with_conv_res = False`` for the first stage, which has none."""

    def __init__(self, with_conv_res: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        channels = kwargs.get("conv_out_channels", 256)
        self.conv_res = None
        if with_conv_res:
            self.conv_res = ConvModule(channels, channels, 1, conv_cfg=kwargs.get("conv_cfg"),
                                       norm_cfg=kwargs.get("norm_cfg"))

    def conv_feats(self, roi_feats: Tensor, res_feat: Tensor | None = None) -> Tensor:
        """The tower's output for RoI features plus, when given, the previous stage's tower output."""
        if res_feat is not None:
            if self.conv_res is None:
                raise ValueError("HTCMaskHead: got the previous stage's features but was built with with_conv_res = False")
            roi_feats = roi_feats + self.conv_res(res_feat)
        return super().conv_feats(roi_feats)

    def forward(self, roi_feats: Tensor, res_feat: Tensor | None = None) -> Tensor:
        return self.logits(self.conv_feats(roi_feats, res_feat))
