"""Box heads with conv / fc layers in front of the predictors (MMDetection's ConvFCBBoxHead family).

Layout: shared convs -> shared fcs -> (cls convs -> cls fcs -> ``fc_cls``) and (reg convs -> reg fcs -> ``fc_reg``).
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from det_common.heads.roi.bbox_head import BBoxHead
from det_common.layers import ConvModule


class ConvFCBBoxHead(BBoxHead):
    """A BBoxHead with configurable shared and per-branch 3x3 convs and fully connected layers (ReLU after each)."""

    def __init__(
        self,
        num_shared_convs: int = 0,
        num_shared_fcs: int = 0,
        num_cls_convs: int = 0,
        num_cls_fcs: int = 0,
        num_reg_convs: int = 0,
        num_reg_fcs: int = 0,
        conv_out_channels: int = 256,
        fc_out_channels: int = 1024,
        conv_cfg: dict[str, Any] | None = None,
        norm_cfg: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_shared_convs + num_shared_fcs + num_cls_convs + num_cls_fcs + num_reg_convs + num_reg_fcs <= 0:
            raise ValueError("ConvFCBBoxHead needs at least one conv or fc layer")
        if (num_cls_convs > 0 or num_reg_convs > 0) and num_shared_fcs > 0:
            raise ValueError("ConvFCBBoxHead: branch convs cannot follow shared fcs")
        self.num_shared_convs = num_shared_convs
        self.num_shared_fcs = num_shared_fcs
        self.num_cls_convs = num_cls_convs
        self.num_cls_fcs = num_cls_fcs
        self.num_reg_convs = num_reg_convs
        self.num_reg_fcs = num_reg_fcs
        self.conv_out_channels = conv_out_channels
        self.fc_out_channels = fc_out_channels
        self.conv_cfg = conv_cfg
        self.norm_cfg = norm_cfg

        self.shared_convs, self.shared_fcs, shared_dim = self._branch(
            num_shared_convs, num_shared_fcs, self.in_channels, is_shared=True
        )
        self.cls_convs, self.cls_fcs, cls_dim = self._branch(num_cls_convs, num_cls_fcs, shared_dim)
        self.reg_convs, self.reg_fcs, reg_dim = self._branch(num_reg_convs, num_reg_fcs, shared_dim)
        if num_shared_fcs == 0 and not self.with_avg_pool:
            if num_cls_fcs == 0:
                cls_dim *= self.roi_feat_area
            if num_reg_fcs == 0:
                reg_dim *= self.roi_feat_area
        self.build_predictors(cls_dim, reg_dim)
        for fcs in (self.shared_fcs, self.cls_fcs, self.reg_fcs):
            for fc in fcs:
                nn.init.xavier_uniform_(fc.weight)
                nn.init.constant_(fc.bias, 0.0)

    def _branch(
        self, num_convs: int, num_fcs: int, in_channels: int, is_shared: bool = False
    ) -> tuple[nn.ModuleList, nn.ModuleList, int]:
        """Convs and fcs of one branch, and the width of its output."""
        dim = in_channels
        convs = nn.ModuleList()
        for i in range(num_convs):
            convs.append(
                ConvModule(
                    dim if i == 0 else self.conv_out_channels,
                    self.conv_out_channels,
                    3,
                    padding=1,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                )
            )
        if num_convs > 0:
            dim = self.conv_out_channels
        fcs = nn.ModuleList()
        if num_fcs > 0:
            if (is_shared or self.num_shared_fcs == 0) and not self.with_avg_pool:
                dim *= self.roi_feat_area
            for i in range(num_fcs):
                fcs.append(nn.Linear(dim if i == 0 else self.fc_out_channels, self.fc_out_channels))
            dim = self.fc_out_channels
        return convs, fcs, dim

    def _run_branch(self, x: Tensor, convs: nn.ModuleList, fcs: nn.ModuleList) -> Tensor:
        for conv in convs:
            x = conv(x)
        if x.dim() > 2:
            if self.avg_pool is not None:
                x = self.avg_pool(x)
            x = x.flatten(1)
        for fc in fcs:
            x = F.relu(fc(x))
        return x

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        return self.branch_outputs(self.shared_features(roi_feats))

    def shared_features(self, roi_feats: Tensor) -> Tensor:
        """The output of the shared convs and fcs, which both branches read (SCNet relays it to the mask head)."""
        x = roi_feats
        for conv in self.shared_convs:
            x = conv(x)
        if self.num_shared_fcs > 0:
            if self.avg_pool is not None:
                x = self.avg_pool(x)
            x = x.flatten(1)
            for fc in self.shared_fcs:
                x = F.relu(fc(x))
        return x

    def branch_outputs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits and box deltas of the shared features: the cls and reg branches, then the predictors."""
        x_cls = self._run_branch(x, self.cls_convs, self.cls_fcs)
        x_reg = self._run_branch(x, self.reg_convs, self.reg_fcs)
        cls_score = self.fc_cls(x_cls) if self.fc_cls is not None else x_cls.new_zeros((x_cls.shape[0], 0))
        bbox_pred = self.fc_reg(x_reg) if self.fc_reg is not None else x_reg.new_zeros((x_reg.shape[0], 0))
        return cls_score, bbox_pred


class Shared2FCBBoxHead(ConvFCBBoxHead):
    """Two shared fully connected layers (Faster R-CNN with FPN; torchvision's TwoMLPHead + FastRCNNPredictor)."""

    def __init__(self, fc_out_channels: int = 1024, **kwargs: Any) -> None:
        super().__init__(num_shared_fcs=2, fc_out_channels=fc_out_channels, **kwargs)


class Shared4Conv1FCBBoxHead(ConvFCBBoxHead):
    """Four shared 3x3 convs then one shared fc (the "4conv1fc" head, usually with GN)."""

    def __init__(self, fc_out_channels: int = 1024, **kwargs: Any) -> None:
        super().__init__(num_shared_convs=4, num_shared_fcs=1, fc_out_channels=fc_out_channels, **kwargs)
