"""Dense heads shared by the single-stage, anchor-free and two-stage families (RoI heads live in ``heads.roi``)."""

from det_common.heads.anchor_free_head import AnchorFreeHead
from det_common.heads.anchor_head import AnchorHead
from det_common.heads.base_dense_head import BaseDenseHead
from det_common.heads.dense_structures import DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.heads.rpn_head import RPNHead
from det_common.postprocess import filter_scores_and_topk

__all__ = [
    "AnchorFreeHead", "AnchorHead", "BaseDenseHead", "DenseOutputs", "DensePriors", "DenseTargets", "RPNHead",
    "filter_scores_and_topk", "flatten_levels",
]
