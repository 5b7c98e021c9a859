"""Second-stage (RoI) components: RoI layers and extractors, box heads, mask heads and the RoI heads."""

from det_common.heads.roi.base_roi_head import BaseRoIHead, BoxForward, BoxResults, MaskForward, MaskResults
from det_common.heads.roi.bbox_head import BBoxHead
from det_common.heads.roi.convfc_bbox_head import ConvFCBBoxHead, Shared2FCBBoxHead, Shared4Conv1FCBBoxHead
from det_common.heads.roi.fcn_mask_head import FCNMaskHead
from det_common.heads.roi.roi_extractor import SingleRoIExtractor
from det_common.heads.roi.roi_layers import (
    DeformRoIPool, DeformRoIPoolPack, ModulatedDeformRoIPoolPack, RoIAlign, RoIPool,
)
from det_common.heads.roi.standard_roi_head import StandardRoIHead

__all__ = [
    "BBoxHead", "BaseRoIHead", "BoxForward", "BoxResults", "ConvFCBBoxHead", "DeformRoIPool", "DeformRoIPoolPack",
    "FCNMaskHead", "MaskForward", "MaskResults", "ModulatedDeformRoIPoolPack", "RoIAlign", "RoIPool", "Shared2FCBBoxHead",
    "Shared4Conv1FCBBoxHead", "SingleRoIExtractor", "StandardRoIHead",
]
