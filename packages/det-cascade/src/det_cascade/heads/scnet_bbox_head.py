"""SCNet's box head (Vu et al. 2021, "SCNet: Training Inference Sample Consistency for Instance
Segmentation"): a ConvFC box head whose shared features are also handed on, to the feature relay."""

from __future__ import annotations

from torch import Tensor

from det_common.heads.roi.convfc_bbox_head import ConvFCBBoxHead


class SCNetBBoxHead(ConvFCBBoxHead):
    """``ConvFCBBoxHead`` (SCNet's configs use two shared fcs) that can also return its shared features."""

    def forward(self, roi_feats: Tensor, return_shared_feat: bool = False) -> tuple[Tensor, ...]:
        """(class logits, box deltas), plus the shared features (K, fc_out_channels) when ``return_shared_feat``."""
        shared = self.shared_features(roi_feats)
        outputs = self.branch_outputs(shared)
        return (*outputs, shared) if return_shared_feat else outputs
