"""The standard second stage: assign and sample proposals, pool RoI features, run the bbox (and mask) heads."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from detcore.interfaces import RoIHead, SamplingResult
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

from det_common.bbox import bbox2roi, bbox_flip, scale_boxes

DEFAULT_TEST_CFG = {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 100}


class StandardRoIHead(RoIHead):
    """Faster / Mask R-CNN's RoI head: one RoI extractor + box head, optionally a mask extractor + mask head.

    ``train_cfg`` holds ``assigner``, ``sampler`` (and ``pos_weight``, ``mask_size`` for masks);
    ``test_cfg`` holds ``score_thr``, ``nms``, ``max_per_img`` (and ``mask_thr_binary``).
    """

    def __init__(
        self,
        bbox_roi_extractor: dict[str, Any] | None = None,
        bbox_head: dict[str, Any] | None = None,
        mask_roi_extractor: dict[str, Any] | None = None,
        mask_head: dict[str, Any] | None = None,
        share_roi_extractor: bool = False,
        train_cfg: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if bbox_head is None:
            raise ValueError("StandardRoIHead needs a bbox_head")
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or DEFAULT_TEST_CFG)
        self.bbox_roi_extractor = build("roi_extractors", bbox_roi_extractor)
        self.bbox_head = build("bbox_heads", bbox_head)
        self.mask_head = build("mask_heads", mask_head) if mask_head is not None else None
        self.share_roi_extractor = share_roi_extractor or (self.mask_head is not None and mask_roi_extractor is None)
        self.mask_roi_extractor = None
        if self.mask_head is not None and not self.share_roi_extractor:
            self.mask_roi_extractor = build("roi_extractors", mask_roi_extractor)
        self.assigner = None
        self.sampler = None
        if self.train_cfg:
            self.assigner = build("assigners", self.train_cfg["assigner"])
            self.sampler = build("samplers", self.train_cfg["sampler"])

    @property
    def with_mask(self) -> bool:
        return self.mask_head is not None

    # -- forward pieces -------------------------------------------------------------------
    def bbox_forward(self, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Class scores, box deltas and pooled features of RoIs (K, 5)."""
        roi_feats = self.bbox_roi_extractor(feats, rois)
        cls_score, bbox_pred = self.bbox_head(roi_feats)
        return cls_score, bbox_pred, roi_feats

    def mask_forward(self, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Mask logits of RoIs (K, 5)."""
        extractor = self.bbox_roi_extractor if self.share_roi_extractor else self.mask_roi_extractor
        return self.mask_head(extractor(feats, rois))

    # -- training -------------------------------------------------------------------------
    def sample(self, feats: Sequence[Tensor], proposals: list[Instances], batch: Batch) -> list[SamplingResult]:
        """Assign every image's proposals to its ground truth and sample the RoIs for the loss."""
        if self.assigner is None or self.sampler is None:
            raise ValueError("StandardRoIHead.loss needs train_cfg with 'assigner' and 'sampler'")
        if batch.gt is None:
            raise ValueError("StandardRoIHead.loss needs ground truth (batch.gt)")
        results = []
        for i, (props, gt) in enumerate(zip(proposals, batch.gt)):
            ignored = batch.ignored[i] if batch.ignored is not None else None
            pred = Instances(props.image_size, priors=props.boxes.detach()[:, :4])
            assign_result = self.assigner.assign(pred, gt, ignored)
            image_feats = [f[i : i + 1] for f in feats]
            results.append(self.sampler.sample(assign_result, pred, gt, feats=image_feats))
        return results

    def loss(self, feats: Sequence[Tensor], proposals: list[Instances], batch: Batch) -> dict[str, Tensor]:
        """Box (and mask) losses of sampled proposals."""
        sampling_results = self.sample(feats, proposals, batch)
        rois = bbox2roi([res.priors for res in sampling_results])
        cls_score, bbox_pred, _ = self.bbox_forward(feats, rois)
        targets = self.bbox_head.get_targets(sampling_results, self.train_cfg.get("pos_weight", -1.0))
        losses = self.bbox_head.loss(cls_score, bbox_pred, rois, *targets)
        if self.with_mask:
            losses.update(self.mask_loss(feats, sampling_results, batch))
        return losses

    def mask_loss(
        self, feats: Sequence[Tensor], sampling_results: list[SamplingResult], batch: Batch
    ) -> dict[str, Tensor]:
        """Mask loss on the positive RoIs against the ground-truth masks cropped to them."""
        pos_rois = bbox2roi([res.pos_priors for res in sampling_results])
        mask_pred = self.mask_forward(feats, pos_rois)
        targets = self.mask_head.get_targets(sampling_results, batch.gt, self.train_cfg.get("mask_size", 28))
        labels = torch.cat([res.pos_gt_labels for res in sampling_results]).long()
        return self.mask_head.loss(mask_pred, targets, labels)

    # -- inference ------------------------------------------------------------------------
    def predict(
        self,
        feats: Sequence[Tensor],
        proposals: list[Instances],
        metas: Sequence[ImageMeta],
        rescale: bool = True,
    ) -> list[Instances]:
        """Detections per image (boxes in original pixels when ``rescale``)."""
        results = self.predict_bbox(feats, proposals, metas, rescale)
        if self.with_mask:
            results = self.predict_mask(feats, results, metas, rescale)
        return results

    def predict_bbox(
        self, feats: Sequence[Tensor], proposals: list[Instances], metas: Sequence[ImageMeta], rescale: bool
    ) -> list[Instances]:
        """Box detections per image from the proposals' class scores and refined boxes."""
        rois = bbox2roi([p.boxes[:, :4] for p in proposals]).to(feats[0])
        cls_score, bbox_pred, _ = self.bbox_forward(feats, rois)
        counts = [len(p) for p in proposals]
        results = []
        for img_rois, img_cls, img_reg, meta in zip(
            rois.split(counts), cls_score.split(counts), bbox_pred.split(counts), metas
        ):
            results.append(self.bbox_head.predict_by_feat(img_rois, img_cls, img_reg, meta, rescale, self.test_cfg))
        return results

    def predict_mask(
        self, feats: Sequence[Tensor], detections: list[Instances], metas: Sequence[ImageMeta], rescale: bool
    ) -> list[Instances]:
        """Add a ``masks`` field (N, H, W) bool to each image's detections."""
        rois = detection_rois(detections, metas, rescale).to(feats[0])
        if rois.shape[0] > 0:
            per_image = self.mask_forward(feats, rois).split([len(d) for d in detections])
        else:
            per_image = [None] * len(detections)
        results = []
        for dets, mask_pred, meta in zip(detections, per_image, metas):
            out_shape = meta.ori_shape if rescale else meta.img_shape
            if rescale and meta.flip and mask_pred is not None:
                mask_pred = unflip_masks(mask_pred, meta.flip_direction or "horizontal")
            dets.masks = self.mask_head.predict_by_feat(
                mask_pred, dets.boxes, dets.labels, out_shape, self.test_cfg.get("mask_thr_binary", 0.5)
            )
            results.append(dets)
        return results


def detection_rois(detections: Sequence[Instances], metas: Sequence[ImageMeta], rescale: bool) -> Tensor:
    """RoIs (K, 5) of the detections' boxes in network-input pixels (they are in original pixels when ``rescale``)."""
    return bbox2roi([input_boxes(d.boxes, meta) if rescale else d.boxes for d, meta in zip(detections, metas)])


def input_boxes(boxes: Tensor, meta: ImageMeta) -> Tensor:
    """Original-image boxes -> network-input pixels (scale, then flip as the pipeline did)."""
    boxes = scale_boxes(boxes, meta.scale_factor)
    return bbox_flip(boxes, meta.img_shape, meta.flip_direction or "horizontal") if meta.flip else boxes


def unflip_masks(masks: Tensor, direction: str) -> Tensor:
    """Undo a flip of per-RoI mask maps (..., M, M) predicted on a flipped image."""
    dims = {"horizontal": (-1,), "vertical": (-2,), "diagonal": (-2, -1)}[direction]
    return masks.flip(dims)
