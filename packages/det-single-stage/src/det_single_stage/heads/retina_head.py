"""RetinaHead (Lin et al. 2017): two 4-conv towers over every FPN level, 9 anchors per location."""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from det_common.heads import AnchorHead
from det_common.layers import bias_init_with_prob, conv_tower, forward_towers, normal_init

_ANCHORS = {
    "type": "AnchorGenerator", "octave_base_scale": 4, "scales_per_octave": 3,
    "ratios": [0.5, 1.0, 2.0], "strides": [8, 16, 32, 64, 128],
}
_CODER = {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": [1.0] * 4}
_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
_LOSS_BBOX = {"type": "L1Loss", "loss_weight": 1.0}


class RetinaHead(AnchorHead):
    """``cls_convs`` / ``reg_convs`` (3x3 ConvModules with ReLU) then ``retina_cls`` / ``retina_reg`` 3x3 convs.

    Parameter names follow MMDetection so its RetinaNet checkpoints load unchanged.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        stacked_convs: int = 4,
        feat_channels: int = 256,
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        prior_prob: float = 0.01,
        anchor_generator: Mapping[str, Any] = _ANCHORS,
        bbox_coder: Mapping[str, Any] = _CODER,
        reg_decoded_bbox: bool = False,
        loss_cls: Mapping[str, Any] = _LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.stacked_convs = stacked_convs
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.prior_prob = prior_prob
        super().__init__(
            num_classes, in_channels, feat_channels=feat_channels, anchor_generator=anchor_generator,
            bbox_coder=bbox_coder, reg_decoded_bbox=reg_decoded_bbox, loss_cls=loss_cls, loss_bbox=loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )

    def _init_layers(self) -> None:
        self.cls_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs,
                                    self.conv_cfg, self.norm_cfg)
        self.reg_convs = conv_tower(self.in_channels, self.feat_channels, self.stacked_convs,
                                    self.conv_cfg, self.norm_cfg)
        self.retina_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 3, padding=1)
        self.retina_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * self.box_dim, 3, padding=1)

    def init_weights(self) -> None:
        """Normal(0, 0.01) convs; ``retina_cls`` bias so every class starts at ``prior_prob``."""
        super().init_weights()
        normal_init(self.retina_cls, std=0.01, bias=bias_init_with_prob(self.prior_prob))

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, Tensor]:
        cls_feat, reg_feat = forward_towers(x, self.cls_convs, self.reg_convs)
        return self.retina_cls(cls_feat), self.retina_reg(reg_feat)
