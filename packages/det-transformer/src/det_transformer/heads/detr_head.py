"""DETRHead: classifies and boxes every decoder query; trained on a one-to-one Hungarian matching of queries to
ground truths at every decoder layer (DETR's auxiliary decoding losses, Carion et al. 2020)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from det_common.bbox.transforms import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh
from det_common.postprocess import map_boxes_back
from det_transformer.layers.attention import FFN
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

HUNGARIAN = {"assigner": {"type": "HungarianAssigner", "match_costs": [
    {"type": "ClassificationCost", "weight": 1.0},
    {"type": "BBoxL1Cost", "weight": 5.0, "box_format": "xywh"},
    {"type": "IoUCost", "iou_mode": "giou", "weight": 2.0},
]}}


@dataclass
class SetTargets:
    """Per-query targets of one decoder layer over a batch: class (``num_classes`` = no object) with its weight,
    normalised (cx, cy, w, h) box with its weight (1 on matched queries), and the matched / unmatched counts."""

    labels: Tensor
    label_weights: Tensor
    boxes: Tensor
    box_weights: Tensor
    num_pos: int
    num_neg: int


class DETRHead(nn.Module):
    """A linear classifier (softmax over ``num_classes`` + no-object, or sigmoid) and an FFN regressing
    sigmoid-normalised (cx, cy, w, h) boxes on each decoder layer's queries.

    Losses per decoder layer ``i`` (the last one unprefixed, the others ``d{i}.``): classification averaged over
    matched queries plus ``bg_cls_weight`` x unmatched ones, L1 on normalised boxes and GIoU on pixel boxes,
    both averaged over matched queries. Inference: the best class per query (softmax) or the best
    (query, class) pairs (sigmoid), ``max_per_img`` of them, without NMS.
    """

    train_cfg_keys: tuple[str, ...] = ("assigner",)
    test_cfg_keys: tuple[str, ...] = ("max_per_img",)

    def __init__(self, num_classes: int, embed_dims: int = 256, num_reg_fcs: int = 2,
                 sync_cls_avg_factor: bool = False,
                 loss_cls: Mapping[str, Any] | None = None, loss_bbox: Mapping[str, Any] | None = None,
                 loss_iou: Mapping[str, Any] | None = None, train_cfg: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        loss_cls = dict(loss_cls or {"type": "CrossEntropyLoss", "bg_cls_weight": 0.1, "use_sigmoid": False,
                                     "loss_weight": 1.0, "class_weight": 1.0})
        self.num_classes, self.embed_dims, self.num_reg_fcs = num_classes, embed_dims, num_reg_fcs
        self.sync_cls_avg_factor = sync_cls_avg_factor
        self.bg_cls_weight = self._softmax_class_weights(loss_cls)
        self.loss_cls = build("losses", loss_cls)
        self.loss_bbox = build("losses", dict(loss_bbox or {"type": "L1Loss", "loss_weight": 5.0}))
        self.loss_iou = build("losses", dict(loss_iou or {"type": "GIoULoss", "loss_weight": 2.0}))
        self.use_sigmoid = bool(getattr(self.loss_cls, "use_sigmoid", False))
        self.cls_out_channels = num_classes if self.use_sigmoid else num_classes + 1
        self.train_cfg = dict(HUNGARIAN if train_cfg is None else train_cfg)
        self.test_cfg = dict(test_cfg or {"max_per_img": 100})
        if "sampler" in self.train_cfg:
            raise ValueError(f"{type(self).__name__}: set prediction matches one query per object; remove train_cfg.sampler")
        self.assigner = build("assigners", self.train_cfg["assigner"]) if "assigner" in self.train_cfg else None
        self._init_layers()

    def _softmax_class_weights(self, loss_cls: dict[str, Any]) -> float:
        """DETR down-weights the no-object class: a scalar ``class_weight`` for the objects and ``bg_cls_weight``
        for no-object become the per-class weights of the softmax loss. Returns the no-object weight (0 when the
        classification is not a softmax over ``num_classes + 1``)."""
        bg_cls_weight = loss_cls.pop("bg_cls_weight", None)
        class_weight = loss_cls.get("class_weight")
        if loss_cls.get("use_sigmoid", False) or type(self) is not DETRHead:
            if bg_cls_weight is not None:
                raise ValueError(f"{type(self).__name__}: loss_cls.bg_cls_weight applies to a softmax DETRHead only")
            return 0.0
        if class_weight is None:
            return 0.0
        if not isinstance(class_weight, (int, float)):
            raise ValueError("DETRHead: loss_cls.class_weight must be one number (the weight of every object class); "
                             "the no-object class takes loss_cls.bg_cls_weight")
        bg = float(class_weight if bg_cls_weight is None else bg_cls_weight)
        loss_cls["class_weight"] = [float(class_weight)] * self.num_classes + [bg]
        return bg

    def _init_layers(self) -> None:
        self.fc_cls = nn.Linear(self.embed_dims, self.cls_out_channels)
        self.reg_ffn = FFN(self.embed_dims, self.embed_dims, self.num_reg_fcs, {"type": "ReLU", "inplace": True},
                           ffn_drop=0.0, add_identity=False)
        self.activate = nn.ReLU()
        self.fc_reg = nn.Linear(self.embed_dims, 4)

    # -- forward -----------------------------------------------------------------------------------------
    def forward(self, hidden_states: Tensor) -> tuple[Tensor, Tensor]:
        """(L, B, Q, C) decoder states -> class logits (L, B, Q, cls_out_channels) and sigmoid (cx, cy, w, h)
        boxes (L, B, Q, 4) normalised by the image size."""
        cls_scores = self.fc_cls(hidden_states)
        boxes = self.fc_reg(self.activate(self.reg_ffn(hidden_states))).sigmoid()
        return cls_scores, boxes

    # -- training ----------------------------------------------------------------------------------------
    def loss(self, hidden_states: Tensor, batch: Batch, **head_inputs: Tensor) -> dict[str, Tensor]:
        cls_scores, boxes = self(hidden_states, **head_inputs)
        return self.loss_by_feat(cls_scores, boxes, batch)

    def loss_by_feat(self, all_cls_scores: Tensor, all_boxes: Tensor, batch: Batch) -> dict[str, Tensor]:
        """The losses of every decoder layer: the last unprefixed, the others as ``d{i}.loss_*``."""
        if self.assigner is None:
            raise ValueError(f"{type(self).__name__} has no assigner: give train_cfg.assigner to train it")
        gts = self._ground_truth(batch)
        losses: dict[str, Tensor] = {}
        num_layers = len(all_cls_scores)
        for i, (cls_scores, boxes) in enumerate(zip(all_cls_scores, all_boxes)):
            prefix = "" if i == num_layers - 1 else f"d{i}."
            for name, value in self.loss_single(cls_scores, boxes, gts, batch.metas).items():
                losses[prefix + name] = value
        return dict(sorted(losses.items(), key=lambda kv: kv[0].startswith("d")))

    @staticmethod
    def _ground_truth(batch: Batch) -> list[Instances]:
        if batch.gt is None:
            raise ValueError("the batch has no ground truth (Batch.gt); training needs LoadAnnotations in the pipeline")
        return batch.gt

    def loss_single(self, cls_scores: Tensor, boxes: Tensor, gts: Sequence[Instances],
                    metas: Sequence[ImageMeta]) -> dict[str, Tensor]:
        """``loss_cls``, ``loss_bbox``, ``loss_iou`` of one decoder layer: cls_scores (B, Q, C), boxes (B, Q, 4)."""
        targets = self.get_targets(cls_scores, boxes, gts, metas)
        return self.losses_from_targets(cls_scores, boxes, targets, metas)

    def losses_from_targets(self, cls_scores: Tensor, boxes: Tensor, targets: SetTargets,
                            metas: Sequence[ImageMeta]) -> dict[str, Tensor]:
        cls_avg_factor = max(targets.num_pos + targets.num_neg * self.bg_cls_weight, 1.0)
        loss_cls = self.loss_cls(cls_scores.reshape(-1, self.cls_out_channels), targets.labels, targets.label_weights,
                                 avg_factor=cls_avg_factor)
        num_pos = float(max(targets.num_pos, 1))
        factors = torch.cat([boxes.new_tensor([m.img_shape[1], m.img_shape[0]] * 2).expand(boxes.shape[1], 4)
                             for m in metas])
        flat = boxes.reshape(-1, 4)
        loss_iou = self.loss_iou(bbox_cxcywh_to_xyxy(flat) * factors, bbox_cxcywh_to_xyxy(targets.boxes) * factors,
                                 targets.box_weights, avg_factor=num_pos)
        loss_bbox = self.loss_bbox(flat, targets.boxes, targets.box_weights, avg_factor=num_pos)
        return {"loss_cls": loss_cls, "loss_bbox": loss_bbox, "loss_iou": loss_iou}

    def get_targets(self, cls_scores: Tensor, boxes: Tensor, gts: Sequence[Instances],
                    metas: Sequence[ImageMeta]) -> SetTargets:
        per_image = [self.get_targets_single(c, b, gt, meta) for c, b, gt, meta in zip(cls_scores, boxes, gts, metas)]
        labels, label_weights, box_targets, box_weights, num_pos = zip(*per_image)
        total_pos = sum(num_pos)
        return SetTargets(torch.cat(labels), torch.cat(label_weights), torch.cat(box_targets), torch.cat(box_weights),
                          total_pos, sum(len(lab) for lab in labels) - total_pos)

    def get_targets_single(self, cls_score: Tensor, box: Tensor, gt: Instances,
                           meta: ImageMeta) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """Match one image's queries to its ground truths and return (labels, label weights, box targets, box
        weights, number matched); boxes in (cx, cy, w, h) normalised by ``img_shape``."""
        height, width = meta.img_shape
        factor = box.new_tensor([width, height, width, height])
        num_queries = box.shape[0]
        pred = Instances((height, width), scores=cls_score, boxes=bbox_cxcywh_to_xyxy(box) * factor)
        result = self.assigner.assign(pred, gt)
        pos = (result.gt_inds > 0).nonzero().flatten()
        matched = result.gt_inds[pos] - 1
        labels = torch.full((num_queries,), self.num_classes, dtype=torch.long, device=box.device)
        labels[pos] = gt.labels[matched].to(box.device)
        box_targets = torch.zeros_like(box)
        box_weights = torch.zeros_like(box)
        box_weights[pos] = 1.0
        box_targets[pos] = bbox_xyxy_to_cxcywh(gt.boxes[matched].to(box) / factor)
        return labels, box.new_ones(num_queries), box_targets, box_weights, int(pos.numel())

    # -- inference ---------------------------------------------------------------------------------------
    def predict(self, hidden_states: Tensor, metas: Sequence[ImageMeta], rescale: bool = True,
                **head_inputs: Tensor) -> list[Instances]:
        cls_scores, boxes = self(hidden_states, **head_inputs)
        return [self.predict_single(c, b, meta, rescale) for c, b, meta in zip(cls_scores[-1], boxes[-1], metas)]

    def predict_single(self, cls_score: Tensor, box: Tensor, meta: ImageMeta, rescale: bool = True) -> Instances:
        """``max_per_img`` detections of one image from its last-layer logits (Q, C) and boxes (Q, 4)."""
        max_per_img = min(int(self.test_cfg.get("max_per_img", len(cls_score))), cls_score.numel())
        if self.use_sigmoid:
            scores, index = cls_score.sigmoid().flatten().topk(max_per_img)
            labels, query = index % self.num_classes, index // self.num_classes
        else:
            scores, labels = F.softmax(cls_score, dim=-1)[..., :-1].max(-1)
            scores, query = scores.topk(min(max_per_img, len(scores)))
            labels = labels[query]
        height, width = meta.img_shape
        boxes = bbox_cxcywh_to_xyxy(box[query]) * box.new_tensor([width, height, width, height])
        boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                             boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=-1)
        if rescale:
            boxes = map_boxes_back(boxes, meta)
        return Instances(meta.ori_shape if rescale else meta.img_shape, boxes=boxes, scores=scores, labels=labels)
