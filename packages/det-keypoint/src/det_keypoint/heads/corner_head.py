"""CornerNet head (Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints"): an object is a pair of
top-left and bottom-right corners, each found as a heatmap peak after corner pooling, refined by an offset and
paired by associative embeddings (corners of one object embed close, of different objects far apart)."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from det_common.bbox import bbox_flip
from det_common.layers import ConvModule, bias_init_with_prob
from det_common.postprocess import batched_nms_with_cfg
from det_keypoint.heatmaps import batch_input_size, canvas_offset, draw_gaussian, gather_at, gaussian_radius, local_maximum, topk_peaks
from detcore import ops
from detcore.interfaces import DenseHead
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

_BN = {"type": "BN", "requires_grad": True}
_HEATMAP_LOSS = {"type": "GaussianFocalLoss", "alpha": 2.0, "gamma": 4.0, "loss_weight": 1}
_EMBEDDING_LOSS = {"type": "AssociativeEmbeddingLoss", "pull_weight": 0.25, "push_weight": 0.25}
_OFFSET_LOSS = {"type": "SmoothL1Loss", "beta": 1.0, "loss_weight": 1}
TEST_CFG = {"corner_topk": 100, "local_maximum_kernel": 3, "distance_threshold": 0.5, "score_thr": 0.05,
            "max_per_img": 100, "num_dets": 1000,
            "nms": {"type": "soft_nms", "iou_threshold": 0.5, "method": "gaussian"}}


class BiCornerPool(nn.Module):
    """Corner pooling (CornerNet): two 3x3 conv branches max-pooled towards the corner along the two
    ``directions`` (through ``detcore.ops.corner_pool``), summed, plus a 1x1 shortcut, then a 3x3 conv."""

    def __init__(self, in_channels: int, directions: Sequence[str], feat_channels: int = 128,
                 out_channels: int = 128, norm_cfg: Mapping[str, Any] = _BN) -> None:
        super().__init__()
        self.directions = tuple(directions)
        self.direction1_conv = ConvModule(in_channels, feat_channels, 3, padding=1, norm_cfg=norm_cfg)
        self.direction2_conv = ConvModule(in_channels, feat_channels, 3, padding=1, norm_cfg=norm_cfg)
        self.aftpool_conv = ConvModule(feat_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg, act_cfg=None)
        self.conv1 = ConvModule(in_channels, out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
        self.conv2 = ConvModule(in_channels, out_channels, 3, padding=1, norm_cfg=norm_cfg)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        pooled = (ops.corner_pool(self.direction1_conv(x), self.directions[0])
                  + ops.corner_pool(self.direction2_conv(x), self.directions[1]))
        return self.conv2(self.relu(self.aftpool_conv(pooled) + self.conv1(x)))


def _branch(in_channels: int, out_channels: int, feat_channels: int | None = None) -> nn.Sequential:
    """3x3 conv + ReLU, then a 1x1 conv to ``out_channels`` (the heatmap / embedding / offset predictors)."""
    feat_channels = in_channels if feat_channels is None else feat_channels
    return nn.Sequential(ConvModule(in_channels, feat_channels, 3, padding=1),
                         ConvModule(feat_channels, out_channels, 1, norm_cfg=None, act_cfg=None))


class CornerHead(DenseHead):
    """Per feature level (one per hourglass stack; all trained, the last decoded): top-left and bottom-right
    corner pools, then heatmaps (``num_classes``), embeddings (``corner_emb_channels``) and offsets (2) per corner.

    Losses per level ``i`` (``det_loss.i``, ``off_loss.i``, ``pull_loss.i``, ``push_loss.i``): Gaussian focal
    loss on both heatmaps (averaged), smooth L1 on the offsets at the corners, pull / push on the embeddings.
    Decoding (``test_cfg``): ``corner_topk`` local maxima per corner, every top-left x bottom-right pair of
    the same class, right order and embedding distance <= ``distance_threshold`` scores the mean of the two,
    the ``num_dets`` best pairs go through soft-NMS and the ``max_per_img`` best are kept.
    ``pool_channels``: width of the corner pools' two directional branches (128 as CornerNet; small models less).
    """

    train_cfg_keys: tuple[str, ...] = ()
    test_cfg_keys: tuple[str, ...] = tuple(TEST_CFG)

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        num_feat_levels: int = 2,
        corner_emb_channels: int = 1,
        loss_heatmap: Mapping[str, Any] = _HEATMAP_LOSS,
        loss_embedding: Mapping[str, Any] | None = _EMBEDDING_LOSS,
        loss_offset: Mapping[str, Any] = _OFFSET_LOSS,
        train_cfg: Mapping[str, Any] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        pool_channels: int = 128,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_feat_levels = num_feat_levels
        self.corner_emb_channels = corner_emb_channels
        self.with_corner_emb = corner_emb_channels > 0
        self.loss_heatmap = build("losses", loss_heatmap)
        self.loss_embedding = build("losses", loss_embedding) if self.with_corner_emb and loss_embedding else None
        self.loss_offset = build("losses", loss_offset)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = {**TEST_CFG, **dict(test_cfg or {})}
        levels = range(num_feat_levels)
        self.tl_pool = nn.ModuleList(BiCornerPool(in_channels, ("top", "left"), feat_channels=pool_channels,
                                                  out_channels=in_channels) for _ in levels)
        self.br_pool = nn.ModuleList(BiCornerPool(in_channels, ("bottom", "right"), feat_channels=pool_channels,
                                                  out_channels=in_channels) for _ in levels)
        self.tl_heat = nn.ModuleList(_branch(in_channels, num_classes) for _ in levels)
        self.br_heat = nn.ModuleList(_branch(in_channels, num_classes) for _ in levels)
        self.tl_off = nn.ModuleList(_branch(in_channels, 2) for _ in levels)
        self.br_off = nn.ModuleList(_branch(in_channels, 2) for _ in levels)
        if self.with_corner_emb:
            self.tl_emb = nn.ModuleList(_branch(in_channels, corner_emb_channels) for _ in levels)
            self.br_emb = nn.ModuleList(_branch(in_channels, corner_emb_channels) for _ in levels)
        self.init_weights()

    def init_weights(self) -> None:
        """Heatmap prior 0.1 (as CornerNet's code), PyTorch's default init for the other predictors."""
        for heads in (self.tl_heat, self.br_heat):
            for head in heads:
                head[-1].conv.reset_parameters()
                nn.init.constant_(head[-1].conv.bias, bias_init_with_prob(0.1))

    # -- forward ----------------------------------------------------------------------------
    def forward_single(self, x: Tensor, level: int) -> dict[str, Tensor]:
        """Maps of one level: ``tl_heat`` / ``br_heat`` (logits), ``tl_off`` / ``br_off``, ``tl_emb`` / ``br_emb``
        (with embeddings) and the pooled features ``tl_pool`` / ``br_pool``."""
        tl_pool, br_pool = self.tl_pool[level](x), self.br_pool[level](x)
        out = {"tl_heat": self.tl_heat[level](tl_pool), "br_heat": self.br_heat[level](br_pool),
               "tl_off": self.tl_off[level](tl_pool), "br_off": self.br_off[level](br_pool),
               "tl_pool": tl_pool, "br_pool": br_pool}
        if self.with_corner_emb:
            out["tl_emb"] = self.tl_emb[level](tl_pool)
            out["br_emb"] = self.br_emb[level](br_pool)
        return out

    def forward(self, feats: Sequence[Tensor]) -> list[dict[str, Tensor]]:
        if len(feats) != self.num_feat_levels:
            raise ValueError(f"{type(self).__name__}: num_feat_levels={self.num_feat_levels} but got {len(feats)} "
                             "feature maps (one per hourglass stack)")
        return [self.forward_single(x, level) for level, x in enumerate(feats)]

    # -- training ---------------------------------------------------------------------------
    def get_targets(self, gts: Sequence[Instances], feat_shape: torch.Size, input_hw: tuple[int, int],
                    with_guiding_shift: bool = False, with_centripetal_shift: bool = False) -> dict[str, Any]:
        """Corner heatmaps (Gaussians of CornerNet's radius, min overlap 0.3, at the corners' cells), offsets
        from the cells to the exact corners and the (top-left, bottom-right) cells of each object ("pairs");
        CentripetalNet adds guiding shifts (corner cell to the exact center) and centripetal shifts (log
        distances from the exact corners to the center)."""
        batch, _, height, width = feat_shape
        w_ratio, h_ratio = width / input_hw[1], height / input_hw[0]
        like = gts[0].boxes
        maps = {name: like.new_zeros(batch, channels, height, width) for name, channels in
                (("tl_heat", self.num_classes), ("br_heat", self.num_classes), ("tl_off", 2), ("br_off", 2))}
        if with_guiding_shift:
            maps.update(tl_guiding=like.new_zeros(batch, 2, height, width), br_guiding=like.new_zeros(batch, 2, height, width))
        if with_centripetal_shift:
            maps.update(tl_centripetal=like.new_zeros(batch, 2, height, width),
                        br_centripetal=like.new_zeros(batch, 2, height, width))
        pairs: list[list[tuple[tuple[int, int], tuple[int, int]]]] = []
        for i, gt in enumerate(gts):
            image_pairs = []
            for (x1, y1, x2, y2), label in zip(gt.boxes.tolist(), gt.labels.tolist()):
                left, right, top, bottom = x1 * w_ratio, x2 * w_ratio, y1 * h_ratio, y2 * h_ratio
                cx, cy = (x1 + x2) / 2.0 * w_ratio, (y1 + y2) / 2.0 * h_ratio
                li, ri = int(min(left, width - 1)), int(min(right, width - 1))
                ti, bi = int(min(top, height - 1)), int(min(bottom, height - 1))
                radius = gaussian_radius(math.ceil(bottom - top), math.ceil(right - left), min_overlap=0.3)
                radius = max(0, int(radius))
                draw_gaussian(maps["tl_heat"][i, label], (li, ti), radius)
                draw_gaussian(maps["br_heat"][i, label], (ri, bi), radius)
                maps["tl_off"][i, :, ti, li] = like.new_tensor([left - li, top - ti])
                maps["br_off"][i, :, bi, ri] = like.new_tensor([right - ri, bottom - bi])
                image_pairs.append(((ti, li), (bi, ri)))
                if with_guiding_shift:
                    maps["tl_guiding"][i, :, ti, li] = like.new_tensor([cx - li, cy - ti])
                    maps["br_guiding"][i, :, bi, ri] = like.new_tensor([ri - cx, bi - cy])
                if with_centripetal_shift:
                    maps["tl_centripetal"][i, :, ti, li] = like.new_tensor([math.log(cx - left), math.log(cy - top)])
                    maps["br_centripetal"][i, :, bi, ri] = like.new_tensor([math.log(right - cx), math.log(bottom - cy)])
            pairs.append(image_pairs)
        return {**maps, "pairs": pairs}

    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        if batch.gt is None:
            raise ValueError(f"{type(self).__name__}.loss needs ground truth (batch.gt is None)")
        outs = self(feats)
        targets = self.get_targets(batch.gt, outs[-1]["tl_heat"].shape, batch_input_size(batch.metas),
                                   **self.target_options())
        losses: dict[str, Tensor] = {}
        for level, level_outs in enumerate(outs):
            for name, value in self.loss_level(level_outs, targets).items():
                losses[f"{name}.{level}"] = value
        return losses

    def target_options(self) -> dict[str, bool]:
        """Which extra targets ``get_targets`` draws (CentripetalNet's shifts)."""
        return {}

    def heatmap_and_offset_losses(self, outs: Mapping[str, Tensor], targets: Mapping[str, Any]) -> dict[str, Tensor]:
        """``det_loss`` (mean of the two corners' Gaussian focal losses, each averaged by its peaks) and
        ``off_loss`` (smooth L1 at the cells holding a peak of any class)."""
        det, off = [], []
        for corner in ("tl", "br"):
            heat_target = targets[f"{corner}_heat"]
            peaks = heat_target.eq(1)
            det.append(self.loss_heatmap(outs[f"{corner}_heat"].sigmoid(), heat_target,
                                         avg_factor=max(1.0, float(peaks.sum()))))
            mask = peaks.sum(1).gt(0).unsqueeze(1).to(heat_target.dtype)
            off.append(self.loss_offset(outs[f"{corner}_off"], targets[f"{corner}_off"], mask,
                                        avg_factor=max(1.0, float(mask.sum()))))
        return {"det_loss": (det[0] + det[1]) / 2.0, "off_loss": (off[0] + off[1]) / 2.0}

    def loss_level(self, outs: Mapping[str, Tensor], targets: Mapping[str, Any]) -> dict[str, Tensor]:
        losses = self.heatmap_and_offset_losses(outs, targets)
        if self.loss_embedding is not None:
            losses["pull_loss"], losses["push_loss"] = self.loss_embedding(outs["tl_emb"], outs["br_emb"], targets["pairs"])
        return losses

    # -- inference --------------------------------------------------------------------------
    def predict(self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = True) -> list[Instances]:
        return self.predict_by_feat(self(feats), metas, rescale)

    def predict_by_feat(self, outs: Sequence[Mapping[str, Tensor]], metas: Sequence[ImageMeta],
                        rescale: bool = True) -> list[Instances]:
        """Detections of every image from the last level's maps, in original pixels when ``rescale`` (a view
        flipped before the canvas padding, as the flip test's, is flipped back within the original image)."""
        last = outs[-1]
        results = []
        for i, meta in enumerate(metas):
            single = {name: value[i : i + 1] for name, value in last.items()}
            boxes, scores, labels = self.decode(single, meta, batch_input_size(metas))
            if rescale:
                w_scale, h_scale = meta.scale_factor
                boxes = boxes / boxes.new_tensor([w_scale, h_scale, w_scale, h_scale])
                if meta.flip:
                    boxes = bbox_flip(boxes, meta.ori_shape, meta.flip_direction or "horizontal")
            keep = scores > -0.1
            dets, kept = batched_nms_with_cfg(boxes[keep], scores[keep], labels[keep], self.test_cfg["nms"])
            max_per_img = int(self.test_cfg["max_per_img"])
            if max_per_img > 0:
                dets, kept = dets[:max_per_img], kept[:max_per_img]
            results.append(Instances(tuple(meta.ori_shape if rescale else meta.img_shape), boxes=dets[:, :4],
                                     scores=dets[:, 4], labels=labels[keep][kept]))
        return results

    def decode(self, outs: Mapping[str, Tensor], meta: ImageMeta,
               input_hw: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
        """The ``num_dets`` best corner pairs of one image: boxes (K, 4) in image pixels (off the test canvas),
        scores (K,) (-1 for rejected pairs) and labels (K,); ``input_hw`` is the batch's input size."""
        cfg = self.test_cfg
        tl_heat = local_maximum(outs["tl_heat"].sigmoid(), cfg["local_maximum_kernel"])
        br_heat = local_maximum(outs["br_heat"].sigmoid(), cfg["local_maximum_kernel"])
        _, _, height, width = tl_heat.shape
        k = min(int(cfg["corner_topk"]), tl_heat[0].numel())
        tl_scores, tl_pos, tl_labels, tl_ys, tl_xs = topk_peaks(tl_heat, k)
        br_scores, br_pos, br_labels, br_ys, br_xs = topk_peaks(br_heat, k)
        tl_shift, br_shift = gather_at(outs["tl_off"], tl_pos)[0], gather_at(outs["br_off"], br_pos)[0]
        corners = {"tl_x": (tl_xs[0] + tl_shift[:, 0])[:, None], "tl_y": (tl_ys[0] + tl_shift[:, 1])[:, None],
                   "br_x": (br_xs[0] + br_shift[:, 0])[None, :], "br_y": (br_ys[0] + br_shift[:, 1])[None, :]}
        input_h, input_w = input_hw
        left, top = canvas_offset(meta)
        scale = {"x": input_w / width, "y": input_h / height}
        shift = {"x": left, "y": top}

        def to_image(value: Tensor, axis: str) -> Tensor:
            """Feature-map coordinates along ``axis`` to image pixels off the canvas, negatives set to 0."""
            value = value * scale[axis] - shift[axis]
            return torch.where(value > 0.0, value, torch.zeros_like(value))

        image = {name: to_image(value, name[-1]).expand(k, k) for name, value in corners.items()}
        boxes = torch.stack([image["tl_x"], image["tl_y"], image["br_x"], image["br_y"]], dim=-1)
        scores = (tl_scores[0][:, None] + br_scores[0][None, :]) / 2
        rejected = ((tl_labels[0][:, None] != br_labels[0][None, :]) | (image["br_x"] <= image["tl_x"])
                    | (image["br_y"] <= image["tl_y"]) | self.reject_pairs(outs, tl_pos, br_pos, corners, boxes, to_image))
        scores = torch.where(rejected, torch.full_like(scores, -1.0), scores)
        scores, best = scores.reshape(-1).topk(min(int(cfg["num_dets"]), k * k))
        labels = tl_labels[0][:, None].expand(k, k).reshape(-1)[best]
        return boxes.reshape(-1, 4)[best], scores, labels

    def reject_pairs(self, outs: Mapping[str, Tensor], tl_pos: Tensor, br_pos: Tensor, corners: Mapping[str, Tensor],
                     boxes: Tensor, to_image: Callable[[Tensor, str], Tensor]) -> Tensor:
        """(k, k) True for pairs that do not belong together: here, embeddings more than ``distance_threshold``
        apart. ``corners``: feature-map corner coordinates (``tl_x`` (k, 1), ..., ``br_y`` (1, k)); ``boxes``
        (k, k, 4) the pairs' boxes in image pixels; ``to_image`` maps feature coordinates to image pixels."""
        tl_emb = gather_at(outs["tl_emb"], tl_pos)[0, :, 0]
        br_emb = gather_at(outs["br_emb"], br_pos)[0, :, 0]
        return (tl_emb[:, None] - br_emb[None, :]).abs() > self.test_cfg["distance_threshold"]
