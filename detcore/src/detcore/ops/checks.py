"""Input validation shared by the reference ops and compiled backends: errors name the op and the argument."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_tensor(op: str, arg: str, value: object, ndim: int | None = None, shape: str = "") -> Tensor:
    """`value` must be a Tensor (of rank `ndim` when given); `shape` describes the expected layout for the message."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{op}: `{arg}` must be a torch.Tensor{' ' + shape if shape else ''}, got {type(value).__name__}"
        )
    if ndim is not None and value.dim() != ndim:
        raise ValueError(f"{op}: `{arg}` must have {ndim} dimensions {shape}, got shape {tuple(value.shape)}")
    return value


def check_floating(op: str, arg: str, value: Tensor) -> None:
    if not value.is_floating_point():
        raise TypeError(f"{op}: `{arg}` must be a floating-point tensor, got dtype {value.dtype}")


def check_same_device(op: str, **tensors: Tensor | None) -> None:
    devices = {name: t.device for name, t in tensors.items() if t is not None}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"`{name}` on {dev}" for name, dev in devices.items())
        raise ValueError(f"{op}: all tensors must be on the same device, got {listing}")


def check_boxes_scores(op: str, boxes: object, scores: object) -> tuple[Tensor, Tensor]:
    """boxes [N,4] floating and scores [N] on one device."""
    boxes = check_tensor(op, "boxes", boxes, 2, "[N, 4] (x1, y1, x2, y2)")
    scores = check_tensor(op, "scores", scores, 1, "[N]")
    if boxes.shape[1] != 4:
        raise ValueError(f"{op}: `boxes` must have shape [N, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(
            f"{op}: `scores` must have one entry per box: boxes has {boxes.shape[0]} rows, scores has {scores.shape[0]}"
        )
    check_floating(op, "boxes", boxes)
    check_floating(op, "scores", scores)
    check_same_device(op, boxes=boxes, scores=scores)
    return boxes, scores


def check_rois(op: str, input: object, rois: object) -> tuple[Tensor, Tensor]:
    """input [N,C,H,W] floating, rois [K,5] (batch_index, x1, y1, x2, y2) of the same dtype/device, batch indices valid."""
    input = check_tensor(op, "input", input, 4, "[N, C, H, W]")
    rois = check_tensor(op, "rois", rois, 2, "[K, 5] (batch_index, x1, y1, x2, y2)")
    if rois.shape[1] != 5:
        raise ValueError(
            f"{op}: `rois` must have shape [K, 5] (batch_index, x1, y1, x2, y2), got {tuple(rois.shape)}; "
            "prepend the image index to [K, 4] boxes"
        )
    check_floating(op, "input", input)
    if rois.dtype != input.dtype:
        raise TypeError(
            f"{op}: `rois` dtype {rois.dtype} must match `input` dtype {input.dtype}; cast rois with .to(input.dtype)"
        )
    check_same_device(op, input=input, rois=rois)
    if rois.shape[0] > 0:
        batch = rois[:, 0]
        if bool((batch < 0).any()) or bool((batch >= input.shape[0]).any()) or bool((batch != batch.floor()).any()):
            raise ValueError(
                f"{op}: `rois[:, 0]` must hold integer batch indices in [0, {input.shape[0]}), "
                f"got values in [{batch.min().item()}, {batch.max().item()}]"
            )
    return input, rois


def pair(op: str, arg: str, value: int | Sequence[int], minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a (first, second) tuple."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: `{arg}` must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        result = (value, value)
    elif (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        result = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{op}: `{arg}` must be an int or a pair of ints, got {value!r}")
    if min(result) < minimum:
        raise ValueError(f"{op}: `{arg}` must be >= {minimum}, got {value!r}")
    return result


def check_choice(op: str, arg: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{op}: unknown {arg} {value!r}; choose one of {list(choices)}")
    return value  # type: ignore[return-value]


def empty_like_float(reference: Tensor, *shape: int) -> Tensor:
    return torch.zeros(shape, dtype=reference.dtype, device=reference.device)


def check_focal_loss_args(
    op: str, pred: object, target: object, weight: object, reduction: str, reductions: Sequence[str]
) -> tuple[Tensor, Tensor, Tensor | None]:
    """pred [N,C] floating logits, target [N] integer labels in [0, C] (C = background), weight [N] or None."""
    pred = check_tensor(op, "pred", pred, 2, "[N, C] logits")
    target = check_tensor(op, "target", target, 1, "[N] int64 in [0, C]")
    check_floating(op, "pred", pred)
    check_choice(op, "reduction", reduction, reductions)
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"{op}: `target` must hold integer class indices, got dtype {target.dtype}")
    num, num_classes = pred.shape
    if target.shape[0] != num:
        raise ValueError(f"{op}: `target` must have one label per row of `pred` ({num}), got {target.shape[0]}")
    if num > 0 and (bool((target < 0).any()) or bool((target > num_classes).any())):
        raise ValueError(
            f"{op}: `target` labels must lie in [0, {num_classes}] ({num_classes} = background), "
            f"got values in [{int(target.min())}, {int(target.max())}]"
        )
    if weight is not None:
        weight = check_tensor(op, "weight", weight, 1, "[N]")
        if weight.shape[0] != num:
            raise ValueError(f"{op}: `weight` must have one entry per row of `pred` ({num}), got {weight.shape[0]}")
    check_same_device(op, pred=pred, target=target, weight=weight)
    return pred, target, weight
