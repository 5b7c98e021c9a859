"""Reference implementations of every detcore op (pure PyTorch or torchvision): the definitions compiled backends match."""

from detcore.ops.reference.attention import multi_scale_deformable_attention
from detcore.ops.reference.carafe import carafe
from detcore.ops.reference.corner_pool import corner_pool
from detcore.ops.reference.deform import deform_conv2d
from detcore.ops.reference.focal_loss import sigmoid_focal_loss
from detcore.ops.reference.nms import batched_nms, nms, soft_nms
from detcore.ops.reference.roi import deform_roi_pool, roi_align, roi_pool

__all__ = [
    "batched_nms",
    "carafe",
    "corner_pool",
    "deform_conv2d",
    "deform_roi_pool",
    "multi_scale_deformable_attention",
    "nms",
    "roi_align",
    "roi_pool",
    "sigmoid_focal_loss",
    "soft_nms",
]
