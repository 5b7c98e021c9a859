"""Cascade RPN (Vu et al. 2019, "Cascade RPN: Delving into High-Quality Region Proposal Network with Adaptive
Convolution"): a chain of RPN stages, each regressing the boxes the previous one refined, with one anchor per
location, adaptive convolutions that follow the anchors and a region-based first-stage assignment.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detcore.interfaces import DenseHead
from detcore.registry import build
from detcore.structures import Batch, ImageMeta, Instances

from det_common.heads.base_dense_head import BaseDenseHead
from det_common.heads.dense_structures import DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.heads.rpn_head import RPNHead
from det_common.priors import anchor_inside_flags
from det_cascade.assigners.region_assigner import RegionAssigner
from det_cascade.layers.adaptive_conv import AdaptiveConv, anchor_offsets

STAGE_ANCHORS = {"type": "AnchorGenerator", "scales": [8], "ratios": [1.0], "strides": [4, 8, 16, 32, 64]}
#: without sampling, MMDetection averages a stage's losses over all anchors / 200 (as Guided Anchoring does)
UNSAMPLED_AVG_DIVISOR = 200.0


class StageCascadeRPNHead(RPNHead):
    """One Cascade RPN stage: ``rpn_conv`` is an :class:`AdaptiveConv` (``adapt_cfg``: ``{type = "dilation",
    dilation = 3}`` or ``{type = "offset"}``), then 1x1 ``rpn_reg`` and, ``with_cls``, ``rpn_cls``.

    The stage regresses given anchors, one per location and possibly different per image (the previous
    stage's boxes): ``forward(feats, anchors)`` keeps them in ``extras["anchors"]`` with the features the next
    stage reads (``extras["features"]``: this stage's conv output when ``bridged_feature``, else its input).
    A stage without classifier returns empty (N, 0, H, W) class maps. Its assignment sees those anchors
    (``RegionAssigner`` also their ``strides``); without a sampler the losses are averaged over all anchors
    / 200, with one over the sampled anchors; ``loss_bbox`` compares decoded boxes when ``reg_decoded_bbox``.
    """

    def __init__(
        self,
        in_channels: int,
        anchor_generator: Mapping[str, Any] = STAGE_ANCHORS,
        adapt_cfg: Mapping[str, Any] | None = None,
        bridged_feature: bool = False,
        with_cls: bool = True,
        **kwargs: Any,
    ) -> None:
        self.adapt_cfg = dict(adapt_cfg) if adapt_cfg is not None else {"type": "dilation", "dilation": 3}
        self.bridged_feature = bridged_feature
        self.with_cls = with_cls
        super().__init__(in_channels, anchor_generator=anchor_generator, **kwargs)
        if any(n != 1 for n in self.prior_generator.num_base_priors):
            raise ValueError("StageCascadeRPNHead: the anchor generator must give one anchor per location (one scale and ratio)")
        if isinstance(getattr(self, "assigner", None), RegionAssigner) and "anchor_scale" not in self.train_cfg["assigner"]:
            self.assigner.anchor_scale = float(self.prior_generator.scales[0])

    def _init_layers(self) -> None:
        adapt = dict(self.adapt_cfg)
        adapt_type = adapt.pop("type", None)
        self.rpn_conv = AdaptiveConv(self.in_channels, self.feat_channels, adapt_type, **adapt)
        if self.with_cls:
            self.rpn_cls = nn.Conv2d(self.feat_channels, self.num_base_priors * self.cls_out_channels, 1)
        self.rpn_reg = nn.Conv2d(self.feat_channels, self.num_base_priors * 4, 1)

    def level_stride(self, level: int) -> float:
        return float(self.prior_generator.strides[level][0])

    def forward_single(self, x: Tensor, level: int, offset: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(class logits, deltas, the features the next stage reads) of one level."""
        out = F.relu(self.rpn_conv(x, offset))
        cls_score = self.rpn_cls(out) if self.with_cls else out.new_zeros(out.shape[0], 0, *out.shape[2:])
        return cls_score, self.rpn_reg(out), out if self.bridged_feature else x

    def forward(self, feats: Sequence[Tensor], anchors: Sequence[Tensor] | None = None) -> DenseOutputs:
        """The stage on every level; ``anchors``: per level (N, H*W, 4) (the grid's when None)."""
        if anchors is None:
            anchors = self.grid_anchors(feats)
        cls_scores, bbox_preds, features = [], [], []
        for level, x in enumerate(feats):
            offset = None
            if self.rpn_conv.adapt_type == "offset":
                offset = anchor_offsets(anchors[level], self.level_stride(level), tuple(x.shape[-2:]))
            cls_score, bbox_pred, feature = self.forward_single(x, level, offset)
            cls_scores.append(cls_score)
            bbox_preds.append(bbox_pred)
            features.append(feature)
        return DenseOutputs(cls_scores, bbox_preds, extras={"anchors": list(anchors), "features": features})

    def grid_anchors(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Per level, the grid anchors (N, H*W, 4) of every image."""
        sizes = [tuple(x.shape[-2:]) for x in feats]
        grid = self.prior_generator.grid_priors(sizes, dtype=feats[0].dtype, device=feats[0].device)
        return [level[None].expand(feats[0].shape[0], -1, -1) for level in grid]

    def refine_anchors(self, outs: DenseOutputs, metas: Sequence[ImageMeta | None]) -> list[Tensor]:
        """The boxes this stage regresses from its anchors (detached, clipped to each image): the next stage's anchors."""
        refined = []
        for anchors, deltas in zip(outs.extras["anchors"], outs.bbox_preds):
            deltas = deltas.detach().permute(0, 2, 3, 1).reshape(deltas.shape[0], -1, 4)
            refined.append(torch.stack([
                self.bbox_coder.decode(anchors[i], deltas[i], max_shape=None if meta is None else tuple(meta.img_shape))
                for i, meta in enumerate(metas)
            ]))
        return refined

    # -- training ---------------------------------------------------------------------------
    def assignment_inputs(self, priors: DensePriors, outs: DenseOutputs, image: int, meta: ImageMeta) -> Instances:
        """This image's anchors (not the grid's), their levels, strides and whether they may be assigned."""
        img_shape = tuple(meta.img_shape)
        anchors = torch.cat([level[image] for level in outs.extras["anchors"]])
        flags = torch.cat(self.prior_generator.valid_flags(outs.featmap_sizes, img_shape, device=anchors.device))
        strides = torch.cat([anchors.new_full((n,), self.level_stride(level)) for level, n in enumerate(priors.num_per_level)])
        return Instances(
            img_shape,
            priors=anchors,
            level_ids=priors.level_ids,
            strides=strides,
            valid=anchor_inside_flags(anchors, flags, img_shape, self.train_cfg.get("allowed_border", -1)),
        )

    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        avg_factor = targets.avg_factor if self.sampling else targets.labels.numel() / UNSAMPLED_AVG_DIVISOR
        reg = flatten_levels(outs.bbox_preds, 4).reshape(-1, 4)
        if self.reg_decoded_bbox:
            reg = self.bbox_coder.decode(torch.cat(outs.extras["anchors"], dim=1).reshape(-1, 4), reg)
        losses = {"loss_rpn_reg": self.loss_bbox(reg, targets.bbox_targets, targets.bbox_weights, avg_factor=avg_factor)}
        if self.with_cls:
            cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
            losses["loss_rpn_cls"] = self.loss_cls(cls, targets.labels, targets.label_weights, avg_factor=avg_factor)
        return losses

    # -- inference --------------------------------------------------------------------------
    def predict_by_feat(self, outs: DenseOutputs, metas: Sequence[ImageMeta], rescale: bool = True,
                        cfg: Mapping[str, Any] | None = None) -> list[Instances]:
        """Proposals of every image from its own anchors (the dense heads' per-image step)."""
        if not self.with_cls:
            raise ValueError("StageCascadeRPNHead: a stage without classifier (with_cls = false) cannot propose boxes")
        cfg = self.predict_cfg(cfg)
        return [
            self.predict_single(outs, DensePriors([level[i] for level in outs.extras["anchors"]]), i, meta, rescale, cfg)
            for i, meta in enumerate(metas)
        ]


class CascadeRPNHead(DenseHead):
    """``num_stages`` :class:`StageCascadeRPNHead` ``stages`` in a chain: stage ``i + 1`` reads stage ``i``'s
    features and regresses its refined boxes. The first stage starts from its grid anchors; the last
    stage's classifier and boxes are the proposals. ``train_cfg`` is a list (one table per stage);
    ``test_cfg`` and ``proposal_cfg`` go to every stage. Losses are ``s{i}.loss_rpn_reg`` / ``s{i}.loss_rpn_cls``;
    weight names are MMDetection's (``stages.<i>.*``).
    """

    train_cfg_keys = BaseDenseHead.train_cfg_keys
    test_cfg_keys = BaseDenseHead.test_cfg_keys

    def __init__(
        self,
        num_stages: int,
        stages: Sequence[Mapping[str, Any]],
        train_cfg: Sequence[Mapping[str, Any]] | None = None,
        test_cfg: Mapping[str, Any] | None = None,
        proposal_cfg: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(stages) != num_stages:
            raise ValueError(f"CascadeRPNHead: num_stages = {num_stages} but {len(stages)} stage tables")
        if train_cfg is not None and (isinstance(train_cfg, Mapping) or len(train_cfg) != num_stages):
            raise ValueError(f"CascadeRPNHead: train_cfg.rpn must be a list of {num_stages} tables, one per stage")
        self.num_stages = num_stages
        self.stages = nn.ModuleList(
            build("dense_heads", stage, train_cfg=None if train_cfg is None else train_cfg[i], test_cfg=test_cfg,
                  proposal_cfg=proposal_cfg)
            for i, stage in enumerate(stages)
        )

    def stage_outputs(self, feats: Sequence[Tensor], metas: Sequence[ImageMeta | None]) -> list[DenseOutputs]:
        """Every stage's outputs, in order."""
        anchors = None
        outputs = []
        for i, stage in enumerate(self.stages):
            outs = stage(feats, anchors)
            outputs.append(outs)
            feats = outs.extras["features"]
            if i + 1 < self.num_stages:
                anchors = stage.refine_anchors(outs, metas)
        return outputs

    def forward(self, feats: Sequence[Tensor]) -> DenseOutputs:
        """The last stage's outputs (without image sizes, the refined boxes are not clipped)."""
        return self.stage_outputs(feats, [None] * feats[0].shape[0])[-1]

    def loss(self, feats: Sequence[Tensor], batch: Batch) -> dict[str, Tensor]:
        return self.loss_and_outputs(feats, batch)[0]

    def loss_and_outputs(self, feats: Sequence[Tensor], batch: Batch) -> tuple[dict[str, Tensor], DenseOutputs]:
        losses: dict[str, Tensor] = {}
        outputs = self.stage_outputs(feats, batch.metas)
        for i, (stage, outs) in enumerate(zip(self.stages, outputs)):
            for name, value in stage.loss_by_feat(outs, batch).items():
                losses[f"s{i}.{name}"] = value
        return losses, outputs[-1]

    def loss_and_predict(
        self, feats: Sequence[Tensor], batch: Batch, rescale: bool = False
    ) -> tuple[dict[str, Tensor], list[Instances]]:
        losses, last = self.loss_and_outputs(feats, batch)
        return losses, self.stages[-1].predict_by_feat(last, batch.metas, rescale=rescale)

    def predict(self, feats: Sequence[Tensor], metas: Sequence[ImageMeta], rescale: bool = True) -> list[Instances]:
        last = self.stage_outputs(feats, metas)[-1].float()
        return self.stages[-1].predict_by_feat(last, metas, rescale=rescale)
