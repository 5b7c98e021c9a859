"""CenterNet head (Zhou et al., "Objects as Points"): an object is the peak of its class's center heatmap;
its size and the sub-pixel offset of its center are regressed at that peak. No anchors, no NMS."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_common.layers import bias_init_with_prob
from det_keypoint.heatmaps import batch_input_size, canvas_offset, draw_gaussian, gather_at, gaussian_radius, local_maximum, topk_peaks
from detcore.interfaces import DenseHead
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

_HEATMAP_LOSS = {"type": "GaussianFocalLoss", "loss_weight": 1.0}
_WH_LOSS = {"type": "L1Loss", "loss_weight": 0.1}
_OFFSET_LOSS = {"type": "L1Loss", "loss_weight": 1.0}


def to_original_pixels(boxes: Tensor, meta: ImageMeta, rescale: bool) -> Tensor:
    """Boxes (K, 4) in network-input pixels moved out of the test-time canvas (``border``) and, with
    ``rescale``, divided by the image's ``scale_factor``."""
    left, top = canvas_offset(meta)
    boxes = boxes - boxes.new_tensor([left, top, left, top])
    if rescale:
        w_scale, h_scale = meta.scale_factor
        boxes = boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])
    return boxes


class CenterNetHead(DenseHead):
    """Three branches (3x3 conv, ReLU, 1x1 conv) on the one stride-4 map: ``num_classes`` center heatmaps
    (sigmoid), box width / height and center offset, in feature-map cells. Targets are Gaussians of
    CornerNet's radius (min overlap 0.3) around each box's center.

    ``test_cfg``: ``topk`` peaks kept after a ``local_maximum_kernel`` max-pool, ``max_per_img``.
    """

    train_cfg_keys: tuple[str, ...] = ()
    test_cfg_keys: tuple[str, ...] = ("topk", "local_maximum_kernel", "max_per_img")

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        feat_channels: int,
        loss_center_heatmap: Mapping[str, Any] = _HEATMAP_LOSS,
        loss_wh: Mapping[str, Any] = _WH_LOSS,
        loss_offset: Mapping[str, Any] = _OFFSET_LOSS,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.heatmap_head = self._branch(in_channels, feat_channels, num_classes)
        self.wh_head = self._branch(in_channels, feat_channels, 2)
        self.offset_head = self._branch(in_channels, feat_channels, 2)
        self.loss_center_heatmap = build("losses", loss_center_heatmap)
        self.loss_wh = build("losses", loss_wh)
        self.loss_offset = build("losses", loss_offset)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = {"topk": 100, "local_maximum_kernel": 3, "max_per_img": 100, **dict(test_cfg or {})}
        self.init_weights()

    @staticmethod
    def _branch(in_channels: int, feat_channels: int, out_channels: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(in_channels, feat_channels, 3, padding=1), nn.ReLU(inplace=True),
                             nn.Conv2d(feat_channels, out_channels, 1))

    def init_weights(self) -> None:
        """Heatmap prior 0.1 (the paper's bias), size / offset branches near zero (std 0.001)."""
        nn.init.constant_(self.heatmap_head[-1].bias, bias_init_with_prob(0.1))
        for branch in (self.wh_head, self.offset_head):
            for module in branch.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.normal_(module.weight, std=0.001)
                    nn.init.zeros_(module.bias)

    def forward(self, feats: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(center heatmap probabilities, wh, offset) of the single feature map."""
        if len(feats) != 1:
            raise ValueError(f"CenterNetHead predicts from one feature map, got {len(feats)}; use CTResNetNeck")
        x = feats[0]
        return self.heatmap_head(x).sigmoid(), self.wh_head(x), self.offset_head(x)

    # -- training ---------------------------------------------------------------------------
    def get_targets(self, gts: Sequence[Instances], feat_shape: torch.Size,
                    input_hw: tuple[int, int]) -> tuple[dict[str, Tensor], float]:
        """Heatmap, wh, offset targets and the wh / offset weights (1 at each center cell), (N, C|2, H, W),
        plus the number of heatmap peaks (at least 1) the losses are averaged by."""
        batch, _, feat_h, feat_w = feat_shape
        height_ratio, width_ratio = feat_h / input_hw[0], feat_w / input_hw[1]
        like = gts[0].boxes
        heatmap = like.new_zeros(batch, self.num_classes, feat_h, feat_w)
        wh = like.new_zeros(batch, 2, feat_h, feat_w)
        offset = like.new_zeros(batch, 2, feat_h, feat_w)
        weight = like.new_zeros(batch, 2, feat_h, feat_w)
        for i, gt in enumerate(gts):
            boxes = gt.boxes
            cx = (boxes[:, 0] + boxes[:, 2]) * width_ratio / 2
            cy = (boxes[:, 1] + boxes[:, 3]) * height_ratio / 2
            box_h = (boxes[:, 3] - boxes[:, 1]) * height_ratio
            box_w = (boxes[:, 2] - boxes[:, 0]) * width_ratio
            for j in range(len(boxes)):
                x_int, y_int = int(cx[j]), int(cy[j])
                radius = max(0, int(gaussian_radius(float(box_h[j]), float(box_w[j]), min_overlap=0.3)))
                draw_gaussian(heatmap[i, int(gt.labels[j])], (x_int, y_int), radius)
                wh[i, 0, y_int, x_int] = box_w[j]
                wh[i, 1, y_int, x_int] = box_h[j]
                offset[i, 0, y_int, x_int] = cx[j] - x_int
                offset[i, 1, y_int, x_int] = cy[j] - y_int
                weight[i, :, y_int, x_int] = 1
        avg_factor = max(1.0, float(heatmap.eq(1).sum()))
        return {"heatmap": heatmap, "wh": wh, "offset": offset, "weight": weight}, avg_factor

    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        if batch.gt is None:
            raise ValueError("CenterNetHead.loss needs ground truth (batch.gt is None)")
        heatmap, wh, offset = self(feats)
        targets, avg_factor = self.get_targets(batch.gt, heatmap.shape, batch_input_size(batch.metas))
        return {
            "loss_center_heatmap": self.loss_center_heatmap(heatmap, targets["heatmap"], avg_factor=avg_factor),
            "loss_wh": self.loss_wh(wh, targets["wh"], targets["weight"], avg_factor=avg_factor * 2),
            "loss_offset": self.loss_offset(offset, targets["offset"], targets["weight"], avg_factor=avg_factor * 2),
        }

    # -- inference --------------------------------------------------------------------------
    def predict(self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = True) -> list[Instances]:
        heatmap, wh, offset = self(feats)
        return self.predict_by_feat(heatmap, wh, offset, metas, rescale)

    def predict_by_feat(self, heatmap: Tensor, wh: Tensor, offset: Tensor, metas: Sequence[ImageMeta],
                        rescale: bool = True) -> list[Instances]:
        """The ``topk`` heatmap peaks of each image as boxes in original pixels, best first."""
        cfg = self.test_cfg
        input_hw = batch_input_size(metas)
        boxes, scores, labels = self.decode(heatmap, wh, offset, input_hw, cfg["topk"], cfg["local_maximum_kernel"])
        results = []
        for i, meta in enumerate(metas):
            keep = slice(0, cfg["max_per_img"])
            results.append(Instances(tuple(meta.ori_shape if rescale else meta.img_shape),
                                     boxes=to_original_pixels(boxes[i][keep], meta, rescale),
                                     scores=scores[i][keep], labels=labels[i][keep]))
        return results

    @staticmethod
    def decode(heatmap: Tensor, wh: Tensor, offset: Tensor, input_hw: tuple[int, int], k: int = 100,
               kernel: int = 3) -> tuple[Tensor, Tensor, Tensor]:
        """Boxes (N, k, 4) in network-input pixels, scores and labels (N, k) of the ``k`` best local maxima."""
        feat_h, feat_w = heatmap.shape[2:]
        scores, positions, labels, ys, xs = topk_peaks(local_maximum(heatmap, kernel), k=min(k, heatmap[0].numel()))
        size = gather_at(wh, positions)
        shift = gather_at(offset, positions)
        xs = xs + shift[..., 0]
        ys = ys + shift[..., 1]
        x_scale, y_scale = input_hw[1] / feat_w, input_hw[0] / feat_h
        boxes = torch.stack([(xs - size[..., 0] / 2) * x_scale, (ys - size[..., 1] / 2) * y_scale,
                             (xs + size[..., 0] / 2) * x_scale, (ys + size[..., 1] / 2) * y_scale], dim=-1)
        return boxes, scores, labels
