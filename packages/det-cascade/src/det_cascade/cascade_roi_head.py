"""Cascade R-CNN's RoI head (Cai & Vasconcelos 2018): box stages trained at rising IoU thresholds.

Each stage has its own box head (MMDetection layout: ``roi_head.bbox_head.<stage>.*``), optionally
a mask head (``roi_head.mask_head.<stage>.*``, Cascade Mask R-CNN) and, in training, its own
assigner and sampler (``train_cfg`` is a list, one table per stage). A stage regresses the RoIs it
was given, and the next stage starts from those refined boxes. At test time the class logits of all
stages are averaged, the last stage's boxes are kept, and the mask probabilities of all stages are
averaged on those boxes (MMDetection v2).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from detcore.interfaces import RoIHead, SamplingResult
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

from det_common.bbox import bbox2roi
from det_common.heads.roi.standard_roi_head import detection_rois, unflip_masks

DEFAULT_TEST_CFG = {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 100}


def per_stage(value: Any, num_stages: int, name: str) -> list[Any]:
    """``value`` for every stage: a list of ``num_stages`` tables, or one table used by all stages."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_stages:
            raise ValueError(f"CascadeRoIHead: {name} lists {len(value)} entries for num_stages = {num_stages}")
        return list(value)
    return [value] * num_stages


class CascadeRoIHead(RoIHead):
    """``num_stages`` box stages; stage ``i``'s losses are reported as ``s{i}.loss_*`` times ``stage_loss_weights[i]``.

    ``bbox_roi_extractor``, ``bbox_head``, ``mask_roi_extractor`` and ``mask_head`` are one table
    (repeated for every stage) or a list of tables. ``train_cfg`` is a list with, per stage,
    ``assigner``, ``sampler``, ``pos_weight`` (and ``mask_size``); ``test_cfg`` holds ``score_thr``,
    ``nms``, ``max_per_img`` (and ``mask_thr_binary``) for the final detections.
    """

    def __init__(
        self,
        num_stages: int,
        stage_loss_weights: Sequence[float],
        bbox_roi_extractor: dict[str, Any] | Sequence[dict[str, Any]],
        bbox_head: dict[str, Any] | Sequence[dict[str, Any]],
        mask_roi_extractor: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        mask_head: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        train_cfg: Sequence[dict[str, Any]] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"CascadeRoIHead: num_stages must be at least 1, got {num_stages}")
        if len(stage_loss_weights) != num_stages:
            raise ValueError(
                f"CascadeRoIHead: stage_loss_weights has {len(stage_loss_weights)} entries for num_stages = {num_stages}"
            )
        self.num_stages = num_stages
        self.stage_loss_weights = [float(w) for w in stage_loss_weights]
        self.bbox_roi_extractor = nn.ModuleList(
            build("roi_extractors", cfg) for cfg in per_stage(bbox_roi_extractor, num_stages, "bbox_roi_extractor")
        )
        self.bbox_head = nn.ModuleList(build("bbox_heads", cfg) for cfg in per_stage(bbox_head, num_stages, "bbox_head"))
        self.mask_roi_extractor = self.mask_head = None
        if mask_head is not None:
            if mask_roi_extractor is None:
                raise ValueError("CascadeRoIHead: a mask_head needs a mask_roi_extractor")
            self.mask_roi_extractor = nn.ModuleList(
                build("roi_extractors", cfg) for cfg in per_stage(mask_roi_extractor, num_stages, "mask_roi_extractor")
            )
            self.mask_head = nn.ModuleList(build("mask_heads", cfg) for cfg in per_stage(mask_head, num_stages, "mask_head"))
        self.test_cfg = dict(test_cfg or DEFAULT_TEST_CFG)
        self.train_cfg = [dict(cfg) for cfg in per_stage(train_cfg, num_stages, "train_cfg")] if train_cfg else []
        self.assigners = [build("assigners", cfg["assigner"]) for cfg in self.train_cfg]
        self.samplers = [build("samplers", cfg["sampler"]) for cfg in self.train_cfg]

    @property
    def num_classes(self) -> int:
        return self.bbox_head[-1].num_classes

    @property
    def with_mask(self) -> bool:
        return self.mask_head is not None

    # -- forward pieces -------------------------------------------------------------------
    def bbox_forward(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:
        """Class logits and box deltas of stage ``stage`` for RoIs (K, 5)."""
        return self.bbox_head[stage](self.bbox_roi_extractor[stage](feats, rois))

    def mask_forward(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Mask logits of stage ``stage`` for RoIs (K, 5)."""
        return self.mask_head[stage](self.mask_roi_extractor[stage](feats, rois))

    def regress(self, stage: int, rois: Tensor, labels: Tensor, bbox_pred: Tensor, meta: ImageMeta) -> Tensor:
        """Boxes (K, 4) of one image's RoIs (K, 5) moved by stage ``stage``'s deltas for ``labels``."""
        head = self.bbox_head[stage]
        deltas = bbox_pred.view(bbox_pred.shape[0], bbox_pred.shape[1] // 4, 4)
        if deltas.shape[1] > 1:  # class-specific regression: the deltas of each RoI's label
            deltas = deltas[torch.arange(deltas.shape[0], device=deltas.device), labels]
        else:
            deltas = deltas[:, 0]
        return head.bbox_coder.decode(rois[:, 1:], deltas, max_shape=meta.img_shape)

    # -- training -------------------------------------------------------------------------
    def sample(self, stage: int, feats: Sequence[Tensor], proposals: list[Tensor], batch: Batch) -> list[SamplingResult]:
        """Assign each image's boxes to its ground truth with stage ``stage``'s thresholds and sample RoIs."""
        results = []
        for i, (priors, gt) in enumerate(zip(proposals, batch.gt)):
            ignored = batch.ignored[i] if batch.ignored is not None else None
            pred = Instances(tuple(batch.metas[i].img_shape), priors=priors)
            assign_result = self.assigners[stage].assign(pred, gt, ignored)
            image_feats = [f[i : i + 1] for f in feats]
            results.append(self.samplers[stage].sample(assign_result, pred, gt, feats=image_feats))
        return results

    def loss(self, feats: Sequence[Tensor], proposals: list[Instances], batch: Batch) -> dict[str, Tensor]:
        """Box losses of every stage, each stage trained on the boxes the previous one refined."""
        if not self.train_cfg:
            raise ValueError("CascadeRoIHead.loss needs train_cfg: one table with assigner and sampler per stage")
        if batch.gt is None:
            raise ValueError("CascadeRoIHead.loss needs ground truth (batch.gt)")
        boxes = [p.boxes.detach()[:, :4] for p in proposals]
        losses: dict[str, Tensor] = {}
        for stage in range(self.num_stages):
            head = self.bbox_head[stage]
            sampling_results = self.sample(stage, feats, boxes, batch)
            rois = bbox2roi([res.priors for res in sampling_results])
            cls_score, bbox_pred = self.bbox_forward(stage, feats, rois)
            targets = head.get_targets(sampling_results, self.train_cfg[stage].get("pos_weight", -1.0))
            weight = self.stage_loss_weights[stage]
            stage_losses = head.loss(cls_score, bbox_pred, rois, *targets)
            if self.with_mask:
                stage_losses.update(self.mask_loss(stage, feats, sampling_results, batch))
            for name, value in stage_losses.items():
                losses[f"s{stage}.{name}"] = value * weight if "loss" in name else value
            if stage < self.num_stages - 1:
                boxes = self.refine(stage, rois, targets[0], cls_score, bbox_pred, sampling_results, batch.metas)
        return losses

    def mask_loss(
        self, stage: int, feats: Sequence[Tensor], sampling_results: Sequence[SamplingResult], batch: Batch
    ) -> dict[str, Tensor]:
        """Stage ``stage``'s mask loss on its positive RoIs against the ground-truth masks cropped to them."""
        mask_pred = self.mask_forward(stage, feats, bbox2roi([res.pos_priors for res in sampling_results]))
        head = self.mask_head[stage]
        targets = head.get_targets(sampling_results, batch.gt, self.train_cfg[stage].get("mask_size", 28))
        labels = torch.cat([res.pos_gt_labels for res in sampling_results]).long()
        return head.loss(mask_pred, targets, labels)

    @torch.no_grad()
    def refine(
        self,
        stage: int,
        rois: Tensor,
        labels: Tensor,
        cls_score: Tensor,
        bbox_pred: Tensor,
        sampling_results: Sequence[SamplingResult],
        metas: Sequence[ImageMeta],
    ) -> list[Tensor]:
        """The next stage's boxes per image: this stage's sampled RoIs regressed, minus the gt boxes the sampler added.

        Positives regress with their target class; negatives (background label) with their best foreground class.
        """
        background = labels == self.bbox_head[stage].num_classes
        labels = torch.where(background, cls_score[:, :-1].argmax(dim=1), labels)
        refined = []
        for i, (res, meta) in enumerate(zip(sampling_results, metas)):
            in_image = rois[:, 0] == i
            boxes = self.regress(stage, rois[in_image], labels[in_image], bbox_pred[in_image], meta)
            keep = torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
            keep[: res.pos_is_gt.numel()] = ~res.pos_is_gt.bool()
            refined.append(boxes[keep])
        return refined

    # -- inference ------------------------------------------------------------------------
    def predict(
        self,
        feats: Sequence[Tensor],
        proposals: list[Instances],
        metas: Sequence[ImageMeta],
        rescale: bool = True,
    ) -> list[Instances]:
        """Detections per image: all stages' logits averaged, boxes from the last stage (original pixels when ``rescale``)."""
        counts = [len(p) for p in proposals]
        rois = bbox2roi([p.boxes[:, :4] for p in proposals]).to(feats[0])
        stage_scores = []
        for stage in range(self.num_stages):
            cls_score, bbox_pred = self.bbox_forward(stage, feats, rois)
            stage_scores.append(cls_score)
            if stage < self.num_stages - 1:
                labels = cls_score[:, :-1].argmax(dim=1)
                per_image = zip(rois.split(counts), labels.split(counts), bbox_pred.split(counts), metas)
                rois = bbox2roi([self.regress(stage, r, lab, pred, meta) for r, lab, pred, meta in per_image]).to(feats[0])
        cls_score = torch.stack(stage_scores).mean(dim=0)
        head = self.bbox_head[-1]
        results = [
            head.predict_by_feat(img_rois, img_cls, img_reg, meta, rescale, self.test_cfg)
            for img_rois, img_cls, img_reg, meta in zip(
                rois.split(counts), cls_score.split(counts), bbox_pred.split(counts), metas
            )
        ]
        if self.with_mask:
            results = self.predict_mask(feats, results, metas, rescale)
        return results

    def predict_mask(
        self, feats: Sequence[Tensor], detections: list[Instances], metas: Sequence[ImageMeta], rescale: bool
    ) -> list[Instances]:
        """Add ``masks`` (N, H, W) bool to each image's detections: the stages' mask probabilities averaged."""
        rois = detection_rois(detections, metas, rescale).to(feats[0])
        labels = torch.cat([dets.labels for dets in detections]) if detections else torch.zeros(0, dtype=torch.long)
        per_image: list[Tensor | None] = [None] * len(detections)
        if rois.shape[0] > 0:
            probs = torch.stack([
                self.mask_head[stage].class_probs(self.mask_forward(stage, feats, rois), labels)
                for stage in range(self.num_stages)
            ]).mean(dim=0)
            per_image = list(probs.split([len(d) for d in detections]))
        threshold = self.test_cfg.get("mask_thr_binary", 0.5)
        for dets, probs, meta in zip(detections, per_image, metas):
            if rescale and meta.flip and probs is not None:
                probs = unflip_masks(probs, meta.flip_direction or "horizontal")
            out_shape = meta.ori_shape if rescale else meta.img_shape
            dets.masks = self.mask_head[-1].paste_probs(probs, dets.boxes, out_shape, threshold)
        return detections
