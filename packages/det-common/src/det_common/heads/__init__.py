"""Dense heads shared by the single-stage and anchor-free families (RoI heads live in ``heads.roi``)."""

from det_common.heads.anchor_free_head import AnchorFreeHead
from det_common.heads.anchor_head import AnchorHead
from det_common.heads.base_dense_head import BaseDenseHead, filter_scores_and_topk

__all__ = ["AnchorFreeHead", "AnchorHead", "BaseDenseHead", "filter_scores_and_topk"]
