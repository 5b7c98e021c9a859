"""Detection ops dispatched by tensor device to the best registered backend (entry-point group `detcore.ops`).

Each function has the semantics of its namesake in `detcore.ops.reference`; a compiled backend such as det-ops-cuda
serves the (op, device type) pairs it declares, the reference serves the rest. See `backends` for discovery,
`use_backend` / DETCORE_OPS_BACKEND to force a backend, and `backend_table` for what runs where.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from detcore.ops.backends import (
    OP_NAMES,
    OpsBackend,
    backend_table,
    broken_backends,
    loaded_backends,
    op_backend,
    reload_backends,
    resolve,
    use_backend,
)

__all__ = [
    "OP_NAMES",
    "OpsBackend",
    "backend_table",
    "batched_nms",
    "broken_backends",
    "carafe",
    "corner_pool",
    "deform_conv2d",
    "deform_roi_pool",
    "loaded_backends",
    "multi_scale_deformable_attention",
    "nms",
    "op_backend",
    "reload_backends",
    "roi_align",
    "roi_pool",
    "sigmoid_focal_loss",
    "soft_nms",
    "use_backend",
]


def _impl(op: str, arg: str, tensor: Any) -> Callable[..., Any]:
    """The implementation of `op` for the device of `tensor` (its first tensor argument, named `arg`)."""
    try:
        device_type = tensor.device.type
    except AttributeError:
        raise TypeError(f"detcore.ops.{op}: `{arg}` must be a torch.Tensor, got {type(tensor).__name__}") from None
    return resolve(op, device_type)[1]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices (int64) of boxes [N,4] (xyxy) kept by NMS, by decreasing score (torchvision.ops.nms)."""
    return _impl("nms", "boxes", boxes)(boxes, scores, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS independently per value of idxs [N]; kept indices by decreasing score (torchvision.ops.batched_nms)."""
    return _impl("batched_nms", "boxes", boxes)(boxes, scores, idxs, iou_threshold)


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    min_score: float = 1e-3,
    method: str = "linear",
) -> tuple[Tensor, Tensor]:
    """Soft-NMS ("linear", "gaussian" or "naive"); dets [K,5] in selection order and original indices [K]."""
    return _impl("soft_nms", "boxes", boxes)(boxes, scores, iou_threshold, sigma, min_score, method)


def roi_align(
    input: Tensor,
    rois: Tensor,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    aligned: bool = True,
    pool_mode: str = "avg",
) -> Tensor:
    """RoIAlign of rois [K,5] (batch_index, x1, y1, x2, y2) into [K,C,oh,ow]; pool_mode "avg" or "max"."""
    return _impl("roi_align", "input", input)(
        input, rois, output_size, spatial_scale, sampling_ratio, aligned, pool_mode
    )


def roi_pool(input: Tensor, rois: Tensor, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> Tensor:
    """RoIPool of rois [K,5] into [K,C,oh,ow] (torchvision.ops.roi_pool)."""
    return _impl("roi_pool", "input", input)(input, rois, output_size, spatial_scale)


def deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable convolution (modulated when mask is given), torchvision.ops.deform_conv2d semantics."""
    return _impl("deform_conv2d", "input", input)(input, offset, weight, bias, stride, padding, dilation, mask)


def deform_roi_pool(
    input: Tensor,
    rois: Tensor,
    offset: Tensor | None,
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = 0,
    gamma: float = 0.1,
    aligned: bool = True,
) -> Tensor:
    """Deformable RoI pooling: RoIAlign with bins shifted by gamma * offset * (roi_w, roi_h).

    ``aligned=True`` (the default) is mmcv's DeformRoIPool: RoI corners shifted by half a pixel and no
    minimum RoI size, so MMDetection's mdpool weights give the same features.
    """
    return _impl("deform_roi_pool", "input", input)(
        input, rois, offset, output_size, spatial_scale, sampling_ratio, gamma, aligned
    )


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Deformable DETR's multi-scale deformable attention; [B, Q, heads*Cv]."""
    return _impl("multi_scale_deformable_attention", "value", value)(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )


def corner_pool(input: Tensor, mode: str) -> Tensor:
    """CornerNet corner pooling along one direction: mode "top", "bottom", "left" or "right"."""
    return _impl("corner_pool", "input", input)(input, mode)


def sigmoid_focal_loss(
    pred: Tensor,
    target: Tensor,
    gamma: float = 2.0,
    alpha: float = 0.25,
    weight: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """RetinaNet focal loss of logits [N,C] against labels [N] in [0, C] (C = background)."""
    return _impl("sigmoid_focal_loss", "pred", pred)(pred, target, gamma, alpha, weight, reduction)


def carafe(features: Tensor, masks: Tensor, kernel_size: int, group_size: int, scale_factor: int) -> Tensor:
    """CARAFE content-aware upsampling of features [N,C,H,W] by scale_factor with normalized masks."""
    return _impl("carafe", "features", features)(features, masks, kernel_size, group_size, scale_factor)
