"""CentripetalNet head (Dong et al., "CentripetalNet: Pursuing High-quality Keypoint Pairs for Object
Detection"): corners are paired not by embeddings but by where they point. Each corner predicts a guiding shift
(towards the object's center), which steers a cross-star deformable convolution over its pooled features
(feature adaption); from those it regresses a centripetal shift (log distances to the center). A pair is kept
when both corners' shifted points fall inside the central region of the box they span."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from det_common.layers import ConvModule, DeformConv2d
from det_keypoint.heads.corner_head import CornerHead, _branch
from det_keypoint.heatmaps import gather_at
from detcore.registry import build

_GUIDING_LOSS = {"type": "SmoothL1Loss", "beta": 1.0, "loss_weight": 0.05}
_CENTRIPETAL_LOSS = {"type": "SmoothL1Loss", "beta": 1.0, "loss_weight": 1}


class CentripetalHead(CornerHead):
    """CornerHead without embeddings (``corner_emb_channels = 0``) plus, per level and corner: a guiding-shift
    branch, a 1x1 conv turning the (detached) guiding shift into the offsets of a ``feat_adaption_conv_kernel``
    deformable conv over the pooled features, and a centripetal-shift branch on its output.

    Losses per level: ``det_loss``, ``off_loss`` (as CornerNet), ``guiding_loss`` and ``centripetal_loss``
    (smooth L1 at the corner cells). Decoding keeps a pair when the two corners' centripetal points lie inside
    the box's central region (1 / 2.4 of its size, 1 / 2.1 above 3500 px^2) and the points' box covers at most
    ``distance_threshold`` of that region.
    """

    def __init__(self, *args: Any, centripetal_shift_channels: int = 2, guiding_shift_channels: int = 2,
                 feat_adaption_conv_kernel: int = 3, loss_guiding_shift: Mapping[str, Any] = _GUIDING_LOSS,
                 loss_centripetal_shift: Mapping[str, Any] = _CENTRIPETAL_LOSS, **kwargs: Any) -> None:
        if centripetal_shift_channels != 2 or guiding_shift_channels != 2:
            raise ValueError("CentripetalHead: centripetal_shift_channels and guiding_shift_channels must be 2 (x, y)")
        super().__init__(*args, **kwargs)
        self.loss_guiding_shift = build("losses", loss_guiding_shift)
        self.loss_centripetal_shift = build("losses", loss_centripetal_shift)
        channels, kernel, levels = self.in_channels, feat_adaption_conv_kernel, range(self.num_feat_levels)
        for corner in ("tl", "br"):
            setattr(self, f"{corner}_feat_adaption", nn.ModuleList(
                DeformConv2d(channels, channels, kernel, stride=1, padding=kernel // 2) for _ in levels))
            setattr(self, f"{corner}_guiding_shift", nn.ModuleList(_branch(channels, 2) for _ in levels))
            setattr(self, f"{corner}_dcn_offset", nn.ModuleList(
                ConvModule(2, kernel * kernel * 2, 1, bias=False, act_cfg=None) for _ in levels))
            setattr(self, f"{corner}_centripetal_shift", nn.ModuleList(_branch(channels, 2) for _ in levels))
            for level in levels:
                nn.init.normal_(getattr(self, f"{corner}_feat_adaption")[level].weight, std=0.01)
                nn.init.normal_(getattr(self, f"{corner}_dcn_offset")[level].conv.weight, std=0.1)

    def forward_single(self, x: Tensor, level: int) -> dict[str, Tensor]:
        """CornerNet's maps plus ``tl_guiding`` / ``br_guiding`` and ``tl_centripetal`` / ``br_centripetal``."""
        out = super().forward_single(x, level)
        for corner in ("tl", "br"):
            pooled = out[f"{corner}_pool"]
            guiding = getattr(self, f"{corner}_guiding_shift")[level](pooled)
            offset = getattr(self, f"{corner}_dcn_offset")[level](guiding.detach())
            adapted = getattr(self, f"{corner}_feat_adaption")[level](pooled, offset)
            out[f"{corner}_guiding"] = guiding
            out[f"{corner}_centripetal"] = getattr(self, f"{corner}_centripetal_shift")[level](adapted)
        return out

    def target_options(self) -> dict[str, bool]:
        return {"with_guiding_shift": True, "with_centripetal_shift": True}

    def loss_level(self, outs: Mapping[str, Tensor], targets: Mapping[str, Any]) -> dict[str, Tensor]:
        losses = self.heatmap_and_offset_losses(outs, targets)
        for kind, loss in (("guiding", self.loss_guiding_shift), ("centripetal", self.loss_centripetal_shift)):
            per_corner = []
            for corner in ("tl", "br"):
                mask = targets[f"{corner}_heat"].eq(1).sum(1).gt(0).unsqueeze(1).to(targets[f"{corner}_heat"].dtype)
                per_corner.append(loss(outs[f"{corner}_{kind}"], targets[f"{corner}_{kind}"], mask, avg_factor=mask.sum()))
            losses[f"{kind}_loss"] = (per_corner[0] + per_corner[1]) / 2.0
        return losses

    def reject_pairs(self, outs: Mapping[str, Tensor], tl_pos: Tensor, br_pos: Tensor, corners: Mapping[str, Tensor],
                     boxes: Tensor, to_image: Callable[[Tensor, str], Tensor]) -> Tensor:
        """Pairs whose centripetal points leave the box's central region, or whose points' box is more than
        ``distance_threshold`` of that region's area."""
        tl_shift = gather_at(outs["tl_centripetal"], tl_pos)[0].exp()  # (k, 2)
        br_shift = gather_at(outs["br_centripetal"], br_pos)[0].exp()
        points = torch.stack(torch.broadcast_tensors(
            to_image(corners["tl_x"] + tl_shift[:, :1], "x"), to_image(corners["tl_y"] + tl_shift[:, 1:], "y"),
            to_image(corners["br_x"] - br_shift[None, :, 0], "x"), to_image(corners["br_y"] - br_shift[None, :, 1], "y")),
            dim=-1)
        width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        mu = torch.where((width * height).abs() > 3500, torch.full_like(width, 1 / 2.1), torch.full_like(width, 1 / 2.4))
        cx, cy = (boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2
        region = torch.stack([cx - mu * width / 2, cy - mu * height / 2, cx + mu * width / 2, cy + mu * height / 2], -1)
        region_area = ((region[..., 2] - region[..., 0]) * (region[..., 3] - region[..., 1])).abs()
        points_area = ((points[..., 2] - points[..., 0]) * (points[..., 3] - points[..., 1])).abs()
        outside = torch.zeros_like(width, dtype=torch.bool)
        for coord, (low, high) in ((0, (0, 2)), (1, (1, 3)), (2, (0, 2)), (3, (1, 3))):
            outside |= (points[..., coord] <= region[..., low]) | (points[..., coord] >= region[..., high])
        return outside | (points_area / region_area > self.test_cfg["distance_threshold"])
