"""(dx, dy, dw, dh) box coder of R-CNN (Girshick 2015), MMDetection's ``DeltaXYWHBBoxCoder``."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from detcore.interfaces import BoxCoder


class DeltaXYWHBBoxCoder(BoxCoder):
    """Encodes gt boxes as normalized center offsets and log size ratios w.r.t. priors.

    delta = ((gx - px) / pw, (gy - py) / ph, log(gw / pw), log(gh / ph)), then
    (delta - target_means) / target_stds. Widths carry no "+1". Decoding clamps dw, dh to
    +-|log(wh_ratio_clip)| (``add_ctr_clamp`` also clamps the center shift to +-``ctr_clamp``
    pixels and then clamps dw, dh only from above), and clips boxes to ``max_shape`` (h, w)
    when ``clip_border``.

    torchvision's ``BoxCoder(weights)`` equals ``target_stds = 1 / weights`` with
    ``wh_ratio_clip=16/1000`` except that it clamps dw, dh only from above: set
    ``clamp_dwh_below=False`` for that (the two differ only for dw or dh < log(16/1000)).
    """

    def __init__(
        self,
        target_means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
        target_stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        clip_border: bool = True,
        add_ctr_clamp: bool = False,
        ctr_clamp: float = 32,
        wh_ratio_clip: float = 16 / 1000,
        clamp_dwh_below: bool = True,
    ) -> None:
        if len(target_means) != 4 or len(target_stds) != 4:
            raise ValueError("DeltaXYWHBBoxCoder: target_means and target_stds need 4 values each")
        self.means = tuple(float(m) for m in target_means)
        self.stds = tuple(float(s) for s in target_stds)
        self.clip_border = clip_border
        self.add_ctr_clamp = add_ctr_clamp
        self.ctr_clamp = ctr_clamp
        self.wh_ratio_clip = wh_ratio_clip
        self.clamp_dwh_below = clamp_dwh_below

    def encode(self, priors: Tensor, gt_boxes: Tensor) -> Tensor:
        """Deltas (..., 4) of gt boxes (..., 4) relative to priors (..., 4)."""
        if priors.shape[:-1] != gt_boxes.shape[:-1] or priors.shape[-1] != 4 or gt_boxes.shape[-1] != 4:
            raise ValueError(
                f"DeltaXYWHBBoxCoder.encode: priors {tuple(priors.shape)} and gt {tuple(gt_boxes.shape)} must match (..., 4)"
            )
        dtype = gt_boxes.dtype if gt_boxes.is_floating_point() else torch.float32
        priors, gt_boxes = priors.to(dtype), gt_boxes.to(dtype)
        pw = priors[..., 2] - priors[..., 0]
        ph = priors[..., 3] - priors[..., 1]
        px = (priors[..., 0] + priors[..., 2]) * 0.5
        py = (priors[..., 1] + priors[..., 3]) * 0.5
        gw = gt_boxes[..., 2] - gt_boxes[..., 0]
        gh = gt_boxes[..., 3] - gt_boxes[..., 1]
        gx = (gt_boxes[..., 0] + gt_boxes[..., 2]) * 0.5
        gy = (gt_boxes[..., 1] + gt_boxes[..., 3]) * 0.5
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
        return (deltas - deltas.new_tensor(self.means)) / deltas.new_tensor(self.stds)

    def decode(
        self, priors: Tensor, deltas: Tensor, max_shape: tuple[int, int] | None = None
    ) -> Tensor:
        """Boxes (..., 4k) from priors (..., 4) and deltas (..., 4k) (k = 1 or one box per class)."""
        if deltas.shape[-1] % 4 != 0 or priors.shape[-1] != 4:
            raise ValueError(
                f"DeltaXYWHBBoxCoder.decode: priors must be (..., 4), deltas (..., 4k); got "
                f"{tuple(priors.shape)} and {tuple(deltas.shape)}"
            )
        if deltas.shape[:-1] != priors.shape[:-1]:
            raise ValueError(
                f"DeltaXYWHBBoxCoder.decode: priors {tuple(priors.shape)} and deltas {tuple(deltas.shape)} differ in "
                "their leading dimensions"
            )
        lead = deltas.shape[:-1]
        num_boxes = deltas.shape[-1] // 4  # not -1: reshape cannot infer it for empty inputs
        d = deltas.reshape(*lead, num_boxes, 4)
        d = d * d.new_tensor(self.stds) + d.new_tensor(self.means)
        p = priors.to(d.dtype)[..., None, :]
        pxy = (p[..., :2] + p[..., 2:]) * 0.5
        pwh = p[..., 2:] - p[..., :2]
        dxy_wh = pwh * d[..., :2]
        max_ratio = abs(math.log(self.wh_ratio_clip))
        if self.add_ctr_clamp:
            dxy_wh = dxy_wh.clamp(min=-self.ctr_clamp, max=self.ctr_clamp)
            dwh = d[..., 2:].clamp(max=max_ratio)
        elif self.clamp_dwh_below:
            dwh = d[..., 2:].clamp(min=-max_ratio, max=max_ratio)
        else:
            dwh = d[..., 2:].clamp(max=max_ratio)
        gxy = pxy + dxy_wh
        gwh = pwh * dwh.exp()
        boxes = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=-1)
        if self.clip_border and max_shape is not None:
            boxes = clip_boxes(boxes, max_shape)
        return boxes.reshape(*lead, num_boxes * 4)


def clip_boxes(boxes: Tensor, max_shape: tuple[int, int]) -> Tensor:
    """Clamp xyxy boxes (..., 4) to an image of (height, width)."""
    height, width = float(max_shape[0]), float(max_shape[1])
    return torch.stack(
        [
            boxes[..., 0].clamp(0, width),
            boxes[..., 1].clamp(0, height),
            boxes[..., 2].clamp(0, width),
            boxes[..., 3].clamp(0, height),
        ],
        dim=-1,
    )
