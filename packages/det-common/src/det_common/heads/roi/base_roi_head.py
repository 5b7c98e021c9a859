"""The stage-indexed RoI head: what Faster / Mask R-CNN (one stage) and Cascade R-CNN (several) share.

Every step is a method of its own that takes the stage index, so a method changes one step and inherits
the rest: ``bbox_forward`` / ``mask_forward`` (features -> head outputs), ``sample`` (assignment and
sampling, with the per-candidate loss OHEM ranks by), ``bbox_loss`` / ``mask_loss`` (one stage's losses),
``refine`` (the next stage's boxes), ``stage_loss`` (one stage of training), ``predict_bbox`` /
``mask_probs`` / ``predict_mask`` (inference). A stage's modules are ``bbox_head`` itself when the head
has one stage (MMDetection's ``roi_head.bbox_head.*`` layout) or ``bbox_head[stage]`` when it holds an
``nn.ModuleList`` (``roi_head.bbox_head.<stage>.*``); likewise for the extractors and the mask head.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from detcore.interfaces import RoIHead, SamplingResult
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

from det_common.bbox import bbox2roi, bbox_flip, scale_boxes
from det_common.heads.roi.roi_layers import pooling_features

DEFAULT_TEST_CFG = {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 100}


@dataclass
class BoxForward:
    """What a stage's box branch gives for a set of RoIs."""

    cls_score: Tensor  # (K, num_classes + 1) logits, background last
    bbox_pred: Tensor  # (K, 4) or (K, 4 * num_classes) deltas
    roi_feats: Tensor  # (K, C, S, S) pooled features the box head saw


@dataclass
class MaskForward:
    """What a stage's mask branch gives for a set of RoIs."""

    logits: Tensor  # (K, num_classes or 1, M, M)
    roi_feats: Tensor  # (K, C, S, S) pooled features the mask head saw


@dataclass
class BoxResults:
    """One training stage's box branch: its sampled RoIs, outputs, targets and losses."""

    rois: Tensor  # (K, 5) batch index, x1, y1, x2, y2
    outputs: BoxForward
    targets: tuple[Tensor, Tensor, Tensor, Tensor]  # labels, label weights, box targets, box weights
    losses: dict[str, Tensor]


@dataclass
class MaskResults:
    """One training stage's mask branch: its positive RoIs, outputs, targets and losses."""

    rois: Tensor  # (P, 5) the positive RoIs
    outputs: MaskForward
    targets: Tensor  # (P, M, M) binary mask targets
    labels: Tensor  # (P,) the positives' classes
    losses: dict[str, Tensor]


def at_stage(module: nn.Module | None, stage: int) -> Any:
    """``module[stage]`` for a per-stage ``nn.ModuleList``, the module itself when every stage shares it."""
    return module[stage] if isinstance(module, nn.ModuleList) else module


class BaseRoIHead(RoIHead):
    """``num_stages`` box stages (and optionally mask branches) trained on the boxes the previous stage refined.

    Stage ``s`` trains with ``train_cfgs[s]`` (``assigner``, ``sampler``, ``pos_weight``, ``mask_size``);
    its losses are weighted by ``stage_loss_weights[s]`` and, when the modules are stage-indexed, named
    ``s{s}.<loss>``. At test time the class logits of all stages are averaged, the last stage's boxes
    kept, and the mask probabilities of all mask stages averaged (Cai & Vasconcelos 2018; one stage is
    Faster / Mask R-CNN). Subclasses build the modules (see ``StandardRoIHead``, ``CascadeRoIHead``).
    """

    bbox_roi_extractor: nn.Module
    bbox_head: nn.Module
    mask_roi_extractor: nn.Module | None
    mask_head: nn.Module | None
    #: the keys a config's ``train_cfg`` (per stage) / ``test_cfg`` may hold (detcore.engine.validation)
    train_cfg_keys: tuple[str, ...] = ("assigner", "sampler", "pos_weight", "mask_size", "debug")
    test_cfg_keys: tuple[str, ...] = ("score_thr", "nms", "max_per_img", "mask_thr_binary", "min_bbox_size")

    def __init__(
        self,
        num_stages: int,
        stage_loss_weights: Sequence[float],
        train_cfgs: Sequence[dict[str, Any]] | None,
        test_cfg: dict[str, Any] | None,
    ) -> None:
        super().__init__()
        if num_stages < 1:
            raise ValueError(f"{type(self).__name__}: num_stages must be at least 1, got {num_stages}")
        if len(stage_loss_weights) != num_stages:
            raise ValueError(
                f"{type(self).__name__}: stage_loss_weights has {len(stage_loss_weights)} entries "
                f"for num_stages = {num_stages}"
            )
        self.num_stages = num_stages
        self.stage_loss_weights = [float(w) for w in stage_loss_weights]
        self.test_cfg = dict(test_cfg or DEFAULT_TEST_CFG)
        self.train_cfgs = [dict(cfg) for cfg in train_cfgs or []]
        self.assigners = [build("assigners", cfg["assigner"]) for cfg in self.train_cfgs]
        self.samplers = [build("samplers", cfg["sampler"]) for cfg in self.train_cfgs]

    @property
    def num_classes(self) -> int:
        return at_stage(self.bbox_head, self.num_stages - 1).num_classes

    @property
    def with_mask(self) -> bool:
        return getattr(self, "mask_head", None) is not None

    @property
    def stage_indexed(self) -> bool:
        """Whether the box heads are a per-stage list (then losses are named ``s{stage}.<loss>``)."""
        return isinstance(self.bbox_head, nn.ModuleList)

    def mask_stages(self) -> range:
        """The stages whose mask branch runs (every stage; one shared mask head runs once, at the last)."""
        if isinstance(self.mask_head, nn.ModuleList):
            return range(self.num_stages)
        return range(self.num_stages - 1, self.num_stages)

    # -- forward pieces -------------------------------------------------------------------
    def bbox_forward(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> BoxForward:
        """Stage ``stage``'s class logits and box deltas for RoIs (K, 5)."""
        roi_feats = self.bbox_roi_feats(stage, feats, rois)
        cls_score, bbox_pred = at_stage(self.bbox_head, stage)(roi_feats)
        return BoxForward(cls_score, bbox_pred, roi_feats)

    def bbox_roi_feats(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """The pooled features (K, C, S, S) stage ``stage``'s box head sees (HTC adds semantic features here)."""
        return at_stage(self.bbox_roi_extractor, stage)(feats, rois)

    def mask_forward(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> MaskForward:
        """Stage ``stage``'s mask logits for RoIs (K, 5)."""
        roi_feats = self.mask_roi_feats(stage, feats, rois)
        return MaskForward(at_stage(self.mask_head, stage)(roi_feats), roi_feats)

    def mask_roi_feats(self, stage: int, feats: Sequence[Tensor], rois: Tensor) -> Tensor:
        """The pooled features stage ``stage``'s mask head sees (the box extractor pools when none is given for masks)."""
        extractor = self.bbox_roi_extractor if self.mask_roi_extractor is None else self.mask_roi_extractor
        return at_stage(extractor, stage)(feats, rois)

    def regress(self, stage: int, rois: Tensor, labels: Tensor, bbox_pred: Tensor, meta: ImageMeta) -> Tensor:
        """Boxes (K, 4) of one image's RoIs (K, 5) moved by stage ``stage``'s deltas for ``labels``."""
        deltas = bbox_pred.float().view(bbox_pred.shape[0], bbox_pred.shape[1] // 4, 4)
        if deltas.shape[1] > 1:  # class-specific regression: the deltas of each RoI's label
            deltas = deltas[torch.arange(deltas.shape[0], device=deltas.device), labels]
        else:
            deltas = deltas[:, 0]
        return at_stage(self.bbox_head, stage).bbox_coder.decode(rois[:, 1:], deltas, max_shape=meta.img_shape)

    # -- training -------------------------------------------------------------------------
    def sample(self, stage: int, feats: Sequence[Tensor], boxes: list[Tensor], batch: Batch) -> list[SamplingResult]:
        """Assign each image's boxes (N, 4) to its ground truth with stage ``stage``'s settings and sample RoIs.

        Samplers get the image's features (``feats``), the head's per-candidate loss (``loss_fn``, what
        OHEM ranks by) and the background label.
        """
        results = []
        for i, (priors, gt) in enumerate(zip(boxes, batch.gt)):
            ignored = batch.ignored[i] if batch.ignored is not None else None
            pred = Instances(tuple(batch.metas[i].img_shape), priors=priors)
            assign_result = self.assigners[stage].assign(pred, gt, ignored)
            image_feats = [f[i : i + 1] for f in feats]
            results.append(self.samplers[stage].sample(
                assign_result, pred, gt, feats=image_feats, background_label=self.num_classes,
                loss_fn=partial(self.candidate_loss, stage, image_feats),
            ))
        return results

    @torch.no_grad()
    def candidate_loss(self, stage: int, image_feats: Sequence[Tensor], boxes: Tensor, labels: Tensor) -> Tensor:
        """Per-candidate classification loss (N,) of one image's boxes (N, 4) for ``labels`` (no gradient).

        This is what online hard example mining ranks candidates by (Shrivastava et al. 2016).
        """
        rois = torch.cat([boxes.new_zeros((boxes.shape[0], 1)), boxes[:, :4]], dim=1)
        cls_score = self.bbox_forward(stage, image_feats, rois).cls_score
        loss = at_stage(self.bbox_head, stage).loss_cls(cls_score, labels, reduction_override="none")
        return loss.reshape(loss.shape[0], -1).sum(dim=1)

    def bbox_loss(
        self, stage: int, feats: Sequence[Tensor], sampling_results: list[SamplingResult], batch: Batch
    ) -> BoxResults:
        """Stage ``stage``'s box losses on its sampled RoIs."""
        head = at_stage(self.bbox_head, stage)
        rois = bbox2roi([res.priors for res in sampling_results])
        outputs = self.bbox_forward(stage, feats, rois)
        targets = head.get_targets(sampling_results, self.train_cfgs[stage].get("pos_weight", -1.0))
        losses = head.loss(outputs.cls_score, outputs.bbox_pred, rois, *targets)
        return BoxResults(rois, outputs, targets, losses)

    def mask_loss(
        self,
        stage: int,
        feats: Sequence[Tensor],
        sampling_results: list[SamplingResult],
        batch: Batch,
        box_results: BoxResults,
    ) -> MaskResults:
        """Stage ``stage``'s mask loss on its positive RoIs against the ground-truth masks cropped to them."""
        head = at_stage(self.mask_head, stage)
        rois = bbox2roi([res.pos_priors for res in sampling_results])
        outputs = self.mask_forward(stage, feats, rois)
        targets = head.get_targets(sampling_results, batch.gt, self.train_cfgs[stage].get("mask_size", 28))
        labels = torch.cat([res.pos_gt_labels for res in sampling_results]).long()
        return MaskResults(rois, outputs, targets, labels, head.loss(outputs.logits, targets, labels))

    @torch.no_grad()
    def refine(
        self, stage: int, box_results: BoxResults, sampling_results: Sequence[SamplingResult], metas: Sequence[ImageMeta]
    ) -> list[Tensor]:
        """The next stage's boxes per image: this stage's sampled RoIs regressed, minus the gt boxes the sampler added.

        Positives regress with their target class; negatives (background label) with their best foreground class.
        """
        rois, labels = box_results.rois, box_results.targets[0]
        cls_score, bbox_pred = box_results.outputs.cls_score, box_results.outputs.bbox_pred
        labels = torch.where(labels == self.num_classes, cls_score[:, :-1].argmax(dim=1), labels)
        refined = []
        for i, (res, meta) in enumerate(zip(sampling_results, metas)):
            in_image = rois[:, 0] == i
            boxes = self.regress(stage, rois[in_image], labels[in_image], bbox_pred[in_image], meta)
            keep = torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
            keep[: res.pos_is_gt.numel()] = ~res.pos_is_gt.bool()
            refined.append(boxes[keep])
        return refined

    def stage_loss(
        self, stage: int, feats: Sequence[Tensor], boxes: list[Tensor], batch: Batch
    ) -> tuple[dict[str, Tensor], list[Tensor]]:
        """One training stage on each image's boxes: sample, box (and mask) losses, and the next stage's boxes."""
        sampling_results = self.sample(stage, feats, boxes, batch)
        box_results = self.bbox_loss(stage, feats, sampling_results, batch)
        losses = dict(box_results.losses)
        if self.with_mask and stage in self.mask_stages():
            losses.update(self.mask_loss(stage, feats, sampling_results, batch, box_results).losses)
        if stage == self.num_stages - 1:
            return losses, []
        return losses, self.refine(stage, box_results, sampling_results, batch.metas)

    def first_stage_inputs(self, proposals: list[Instances]) -> Any:
        """What the first ``stage_loss`` gets and every stage hands the next: each image's proposal boxes (N, 4),
        detached. Sparse R-CNN carries its proposal features along here too."""
        return [p.boxes.detach()[:, :4] for p in proposals]

    def loss(self, feats: Sequence[Tensor], proposals: list[Instances], batch: Batch) -> dict[str, Tensor]:
        """Losses of every stage, each weighted by its ``stage_loss_weights`` entry (logged values are not)."""
        if not self.train_cfgs:
            raise ValueError(f"{type(self).__name__}.loss needs train_cfg with an assigner and a sampler per stage")
        if batch.gt is None:
            raise ValueError(f"{type(self).__name__}.loss needs ground truth (batch.gt)")
        boxes = self.first_stage_inputs(proposals)
        losses: dict[str, Tensor] = {}
        for stage in range(self.num_stages):
            stage_losses, boxes = self.stage_loss(stage, feats, boxes, batch)
            losses.update(self.weighted_stage_losses(stage, stage_losses))
        return losses

    def weighted_stage_losses(self, stage: int, stage_losses: dict[str, Tensor]) -> dict[str, Tensor]:
        """Stage ``stage``'s values as logged: named ``s{stage}.<name>`` when the heads are stage-indexed, losses
        times ``stage_loss_weights[stage]`` (accuracies unweighted). SCNet names and weights its mask loss apart."""
        weight = self.stage_loss_weights[stage]
        prefix = f"s{stage}." if self.stage_indexed else ""
        return {prefix + name: value * weight if "loss" in name else value for name, value in stage_losses.items()}

    # -- inference ------------------------------------------------------------------------
    def predict(
        self, feats: Sequence[Tensor], proposals: list[Instances], metas: Sequence[ImageMeta], rescale: bool = True
    ) -> list[Instances]:
        """Detections per image (boxes in original pixels when ``rescale``), with ``masks`` when there is a mask head.

        ``feats`` are the neck's maps as it made them; they are converted once here to what the RoI layers read
        (``pooling_features``), so a head that runs convolutions on them first (HTC's semantic head) gets the fast
        path's channels-last / bf16 maps.
        """
        feats = pooling_features(feats)
        results = self.predict_bbox(feats, proposals, metas, rescale)
        if self.with_mask:
            results = self.predict_mask(feats, results, metas, rescale)
        return results

    def predict_bbox(
        self, feats: Sequence[Tensor], proposals: list[Instances], metas: Sequence[ImageMeta], rescale: bool
    ) -> list[Instances]:
        """Box detections per image: every stage regresses the previous one's boxes; logits are averaged."""
        counts = [len(p) for p in proposals]
        rois = bbox2roi([p.boxes[:, :4] for p in proposals]).to(feats[0].device)  # fp32 even after a bf16 backbone
        stage_scores = []
        for stage in range(self.num_stages):
            outputs = self.bbox_forward(stage, feats, rois)
            stage_scores.append(outputs.cls_score)
            if stage < self.num_stages - 1:
                labels = outputs.cls_score[:, :-1].argmax(dim=1)
                per_image = zip(rois.split(counts), labels.split(counts), outputs.bbox_pred.split(counts), metas)
                rois = bbox2roi([self.regress(stage, r, lab, pred, meta) for r, lab, pred, meta in per_image]).to(rois)
        cls_score = sum(stage_scores) / len(stage_scores)
        return self.bbox_detections(rois, cls_score, outputs.bbox_pred, counts, metas, rescale)

    def bbox_detections(
        self, rois: Tensor, cls_score: Tensor, bbox_pred: Tensor, counts: Sequence[int], metas: Sequence[ImageMeta],
        rescale: bool,
    ) -> list[Instances]:
        """Each image's detections from the last stage's RoIs (K, 5), logits and deltas (``counts`` RoIs per image):
        decoding, score threshold and NMS (also run on the outputs of an exported graph)."""
        head = at_stage(self.bbox_head, self.num_stages - 1)
        return [
            head.predict_by_feat(img_rois, img_cls, img_reg, meta, rescale, self.test_cfg)
            for img_rois, img_cls, img_reg, meta in zip(
                rois.split(counts), cls_score.split(counts), bbox_pred.split(counts), metas
            )
        ]

    def mask_probs(self, feats: Sequence[Tensor], rois: Tensor, labels: Tensor) -> Tensor:
        """(K, M, M) foreground probabilities of RoIs (K, 5) for their ``labels``, averaged over the mask stages."""
        probs = [
            at_stage(self.mask_head, stage).class_probs(self.mask_forward(stage, feats, rois).logits, labels)
            for stage in self.mask_stages()
        ]
        return sum(probs) / len(probs)

    def predict_mask(
        self, feats: Sequence[Tensor], detections: list[Instances], metas: Sequence[ImageMeta], rescale: bool
    ) -> list[Instances]:
        """Add ``masks`` (N, H, W) bool to each image's detections."""
        rois = detection_rois(detections, metas, rescale).to(feats[0].device)
        per_image: list[Tensor | None] = [None] * len(detections)
        if rois.shape[0] > 0:
            labels = torch.cat([dets.labels for dets in detections])
            per_image = list(self.mask_probs(feats, rois, labels).split([len(d) for d in detections]))
        return self.paste_masks(detections, per_image, metas, rescale)

    def paste_masks(
        self, detections: list[Instances], probs: Sequence[Tensor | None], metas: Sequence[ImageMeta], rescale: bool
    ) -> list[Instances]:
        """Add ``masks`` (N, H, W) bool to each image's detections from their (N, M, M) probabilities (None: none)."""
        per_image = probs
        threshold = self.test_cfg.get("mask_thr_binary", 0.5)
        head = at_stage(self.mask_head, self.num_stages - 1)
        for dets, probs, meta in zip(detections, per_image, metas):
            if rescale and meta.flip and probs is not None:
                probs = unflip_masks(probs, meta.flip_direction or "horizontal")
            out_shape = meta.ori_shape if rescale else meta.img_shape
            dets.masks = head.paste_probs(probs, dets.boxes, out_shape, threshold)
        return detections


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
