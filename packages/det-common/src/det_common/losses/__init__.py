"""Losses with MMDetection's weight / reduction / avg_factor semantics."""

from det_common.losses.balanced_l1 import BalancedL1Loss, balanced_l1
from det_common.losses.cross_entropy import (
    CrossEntropyLoss, binary_cross_entropy, mask_cross_entropy, softmax_cross_entropy,
)
from det_common.losses.focal import FocalLoss, soft_sigmoid_focal_loss
from det_common.losses.iou import BoundedIoULoss, CIoULoss, DIoULoss, GIoULoss, IoULoss
from det_common.losses.smooth_l1 import L1Loss, SmoothL1Loss, smooth_l1
from det_common.losses.utils import reduce_loss, weight_reduce_loss
from det_common.losses.varifocal import VarifocalLoss, varifocal_loss

__all__ = [
    "BalancedL1Loss", "BoundedIoULoss", "CIoULoss", "CrossEntropyLoss", "DIoULoss", "FocalLoss", "GIoULoss",
    "IoULoss", "L1Loss", "SmoothL1Loss", "balanced_l1", "binary_cross_entropy", "mask_cross_entropy",
    "reduce_loss", "smooth_l1", "soft_sigmoid_focal_loss", "softmax_cross_entropy", "weight_reduce_loss",
    "VarifocalLoss", "varifocal_loss",
]
