"""AnchorFreeHead: stacked conv towers predicting per-point classes and box distances (FCOS-style base)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from torch import Tensor, nn

from det_common.layers import DeformConv2dPack, bias_init_with_prob, conv_tower, forward_towers, normal_init

from det_common.heads.base_dense_head import BaseDenseHead

_DEFAULT_LOSS_CLS = {"type": "FocalLoss", "use_sigmoid": True, "gamma": 2.0, "alpha": 0.25, "loss_weight": 1.0}
_DEFAULT_LOSS_BBOX = {"type": "IoULoss", "loss_weight": 1.0}
_DEFAULT_CODER = {"type": "DistancePointBBoxCoder"}


class AnchorFreeHead(BaseDenseHead):
    """Points instead of anchors: ``cls_convs`` / ``reg_convs`` towers, then ``conv_cls`` / ``conv_reg``.

    Subclasses define how points become targets (``get_targets_single``: FCOS, FoveaBox, ...).

    ``conv_bias="auto"`` gives the tower convs a bias only without a norm (torchvision's FCOS
    keeps the bias under its GroupNorm: set True); ``dcn_on_last_conv`` makes each tower's last conv a
    modulated deformable one (the DCN rows of FCOS and VarifocalNet). ``point_offset`` places the points at
    ``(k + offset) * stride``: 0.5 (cell centers) in MMDetection v2, 0 in torchvision's FCOS.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int = 256,
        stacked_convs: int = 4,
        strides: Sequence[int] = (4, 8, 16, 32, 64),
        conv_bias: bool | str = "auto",
        conv_cfg: Mapping[str, Any] | None = None,
        norm_cfg: Mapping[str, Any] | None = None,
        dcn_on_last_conv: bool = False,
        point_offset: float = 0.5,
        bbox_coder: Mapping[str, Any] = _DEFAULT_CODER,
        loss_cls: Mapping[str, Any] = _DEFAULT_LOSS_CLS,
        loss_bbox: Mapping[str, Any] = _DEFAULT_LOSS_BBOX,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        self.stacked_convs = stacked_convs
        self.strides = list(strides)
        self.conv_bias = conv_bias
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg
        self.dcn_on_last_conv = dcn_on_last_conv
        points = {"type": "MlvlPointGenerator", "strides": self.strides, "offset": point_offset}
        super().__init__(
            num_classes, in_channels, feat_channels, points, bbox_coder, loss_cls, loss_bbox,
            train_cfg=train_cfg, test_cfg=test_cfg,
        )
        self._init_layers()
        self.init_weights()

    # -- layers -----------------------------------------------------------------------------
    def _conv_tower(self) -> nn.ModuleList:
        return conv_tower(self.in_channels, self.feat_channels, self.stacked_convs, self.conv_cfg, self.norm_cfg,
                          bias=self.conv_bias, dcn_on_last_conv=self.dcn_on_last_conv)

    def _init_layers(self) -> None:
        self.cls_convs = self._conv_tower()
        self.reg_convs = self._conv_tower()
        self.conv_cls = nn.Conv2d(self.feat_channels, self.cls_out_channels, 3, padding=1)
        self.conv_reg = nn.Conv2d(self.feat_channels, self.box_dim, 3, padding=1)

    def init_weights(self) -> None:
        """``init_conv_weights``, then the ``conv_cls`` bias for a 0.01 foreground prior."""
        self.init_conv_weights()
        normal_init(self.conv_cls, std=0.01, bias=bias_init_with_prob(0.01))

    def init_conv_weights(self) -> None:
        """Normal(0, 0.01) convs with zero bias; deformable tower convs keep their zero offsets."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                normal_init(module, std=0.01)
        for module in self.modules():
            if isinstance(module, DeformConv2dPack):
                nn.init.zeros_(module.conv_offset.weight)
                nn.init.zeros_(module.conv_offset.bias)

    def tower_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(cls_feat, reg_feat): one level through the ``cls_convs`` and ``reg_convs`` towers."""
        return forward_towers(x, self.cls_convs, self.reg_convs)

    def tower_outputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(cls_score, bbox_pred, cls_feat, reg_feat) of one level: subclasses branch off the tower features."""
        cls_feat, reg_feat = self.tower_features(x)
        return self.conv_cls(cls_feat), self.conv_reg(reg_feat), cls_feat, reg_feat

    def forward_single(self, x: Tensor, level: int) -> tuple[Tensor, ...]:
        """(cls_score (N, C, H, W), bbox_pred (N, 4, H, W)) of one level."""
        return self.tower_outputs(x)[:2]
