"""The stage-indexed RoI head's seams: one overridden method changes training, sampling and prediction alike."""

import torch

from det_common.bbox import bbox_rescale
from det_common.heads.roi import BaseRoIHead, BoxForward, MaskResults, StandardRoIHead
from detcore.structures import Batch, ImageMeta, Instances

EXTRACTOR = {"type": "SingleRoIExtractor", "out_channels": 4, "featmap_strides": [4],
             "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 2}}
BOX_HEAD = {"type": "Shared2FCBBoxHead", "in_channels": 4, "fc_out_channels": 16, "num_classes": 2}
MASK_HEAD = {"type": "FCNMaskHead", "num_convs": 1, "in_channels": 4, "conv_out_channels": 4, "num_classes": 2}
TRAIN = {"assigner": {"type": "MaxIoUAssigner", "pos_iou_thr": 0.5, "neg_iou_thr": 0.5, "min_pos_iou": 0.5},
         "sampler": {"type": "OHEMSampler", "num": 16, "pos_fraction": 0.25}}


class EnlargedContextHead(StandardRoIHead):
    """Double-Head-like: the box head sees RoIs enlarged 1.5x (only ``bbox_forward`` is overridden)."""

    def bbox_forward(self, stage, feats, rois):
        return super().bbox_forward(stage, feats, bbox_rescale(rois, 1.5))


class BoundaryLossHead(StandardRoIHead):
    """PointRend / Mask Scoring-like: one more loss computed from the mask branch's outputs and targets."""

    def mask_loss(self, stage, feats, sampling_results, batch, box_results) -> MaskResults:
        results = super().mask_loss(stage, feats, sampling_results, batch, box_results)
        results.losses["loss_extra"] = (results.outputs.logits.mean() - results.targets.mean()).abs()
        return results


def inputs():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(1, 4, 16, 16, generator=g)]
    gt_boxes = torch.tensor([[8.0, 8.0, 40.0, 36.0], [30.0, 20.0, 60.0, 60.0]])
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 8:36, 8:40] = masks[1, 20:60, 30:60] = True
    gt = Instances((64, 64), boxes=gt_boxes, labels=torch.tensor([0, 1]), masks=masks)
    props = (gt_boxes.repeat(20, 1) + torch.randn(40, 4, generator=g) * 6).clamp(0, 63)
    props[:, 2:] = torch.maximum(props[:, 2:], props[:, :2] + 2)
    batch = Batch(images=torch.zeros(1, 3, 64, 64), metas=[ImageMeta((64, 64), (64, 64), (64, 64))], gt=[gt])
    return feats, [Instances((64, 64), boxes=props, scores=torch.rand(40, generator=g))], batch


def test_one_forward_override_reaches_loss_ohem_ranking_and_prediction():
    torch.manual_seed(0)
    plain = StandardRoIHead(EXTRACTOR, BOX_HEAD, train_cfg=TRAIN)
    enlarged = EnlargedContextHead(EXTRACTOR, BOX_HEAD, train_cfg=TRAIN)
    enlarged.load_state_dict(plain.state_dict())
    feats, proposals, batch = inputs()
    rois = torch.cat([torch.zeros(40, 1), proposals[0].boxes], dim=1)
    want = plain.bbox_forward(0, feats, bbox_rescale(rois, 1.5))
    got = enlarged.bbox_forward(0, feats, rois)
    assert isinstance(got, BoxForward)
    torch.testing.assert_close(got.cls_score, want.cls_score)
    # OHEM ranks candidates with the overridden forward
    boxes, labels = proposals[0].boxes, torch.full((40,), 2)
    torch.testing.assert_close(enlarged.candidate_loss(0, feats, boxes, labels),
                               torch.nn.functional.cross_entropy(want.cls_score, labels, reduction="none"))
    assert not torch.allclose(plain.candidate_loss(0, feats, boxes, labels), enlarged.candidate_loss(0, feats, boxes, labels))
    assert set(enlarged.loss(feats, proposals, batch)) == {"loss_cls", "loss_bbox", "acc"}
    enlarged.test_cfg = plain.test_cfg = {"score_thr": 0.0, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 5}
    with torch.no_grad():
        assert not torch.equal(enlarged.predict(feats, proposals, batch.metas)[0].scores,
                               plain.predict(feats, proposals, batch.metas)[0].scores)


def test_a_mask_loss_extension_sees_outputs_and_targets_and_joins_the_losses():
    torch.manual_seed(0)
    head = BoundaryLossHead(EXTRACTOR, BOX_HEAD, mask_head=MASK_HEAD, train_cfg={**TRAIN, "mask_size": 14})
    assert isinstance(head, BaseRoIHead) and head.num_stages == 1 and not head.stage_indexed
    feats, proposals, batch = inputs()
    losses = head.loss(feats, proposals, batch)
    assert set(losses) == {"loss_cls", "loss_bbox", "acc", "loss_mask", "loss_extra"}
    assert losses["loss_extra"].requires_grad


class ShiftedFeaturesHead(StandardRoIHead):
    """HTC-like: something is added to the pooled RoI features of both branches (only the feature seams change)."""

    def bbox_roi_feats(self, stage, feats, rois):
        return super().bbox_roi_feats(stage, feats, rois) + 1.0

    def mask_roi_feats(self, stage, feats, rois):
        return super().mask_roi_feats(stage, feats, rois) - 1.0


def test_the_roi_feature_seams_feed_both_heads_and_the_mask_tower_splits_in_two():
    torch.manual_seed(0)
    plain = StandardRoIHead(EXTRACTOR, BOX_HEAD, mask_roi_extractor=EXTRACTOR, mask_head=MASK_HEAD)
    shifted = ShiftedFeaturesHead(EXTRACTOR, BOX_HEAD, mask_roi_extractor=EXTRACTOR, mask_head=MASK_HEAD)
    shifted.load_state_dict(plain.state_dict())
    feats, proposals, _ = inputs()
    rois = torch.cat([torch.zeros(40, 1), proposals[0].boxes], dim=1)
    pooled = plain.bbox_roi_extractor(feats, rois)
    box = shifted.bbox_forward(0, feats, rois)
    torch.testing.assert_close(box.roi_feats, pooled + 1.0)
    torch.testing.assert_close(box.cls_score, plain.bbox_head(pooled + 1.0)[0])
    mask = shifted.mask_forward(0, feats, rois)
    torch.testing.assert_close(mask.logits, plain.mask_head(pooled - 1.0))
    head = plain.mask_head
    torch.testing.assert_close(head.logits(head.conv_feats(pooled)), head(pooled))


class CarriedStateHead(StandardRoIHead):
    """Sparse R-CNN-like: the stage loop carries more than boxes (here a tag beside them)."""

    def first_stage_inputs(self, proposals):
        return ("tag", super().first_stage_inputs(proposals))

    def stage_loss(self, stage, feats, state, batch):
        tag, boxes = state
        self.seen.append(tag)
        losses, _ = super().stage_loss(stage, feats, boxes, batch)
        return losses, (tag, [])


def test_first_stage_inputs_is_what_the_stage_loop_carries():
    torch.manual_seed(0)
    feats, proposals, batch = inputs()
    proposals[0].boxes.requires_grad_(True)
    plain = StandardRoIHead(EXTRACTOR, BOX_HEAD, train_cfg=TRAIN)
    boxes = plain.first_stage_inputs(proposals)
    assert not boxes[0].requires_grad and torch.equal(boxes[0], proposals[0].boxes.detach())
    carried = CarriedStateHead(EXTRACTOR, BOX_HEAD, train_cfg=TRAIN)
    carried.seen = []
    assert {"loss_cls", "loss_bbox"} <= set(carried.loss(feats, proposals, batch)) and carried.seen == ["tag"]


class RenamedMaskLossHead(StandardRoIHead):
    """SCNet-like: one stage's values renamed and weighted apart from the stage weighting."""

    def weighted_stage_losses(self, stage, stage_losses):
        stage_losses = dict(stage_losses)
        extra = {"total_mask": stage_losses.pop("loss_mask") * 3.0}
        return {**super().weighted_stage_losses(stage, stage_losses), **extra}


def test_weighted_stage_losses_names_and_weights_what_each_stage_reports():
    plain = StandardRoIHead(EXTRACTOR, BOX_HEAD, train_cfg=TRAIN)
    plain.stage_loss_weights = [0.5]
    values = {"loss_cls": torch.tensor(2.0), "acc": torch.tensor(90.0)}
    assert plain.weighted_stage_losses(0, values) == {"loss_cls": 1.0, "acc": 90.0}  # one stage: no prefix
    renamed = RenamedMaskLossHead(EXTRACTOR, BOX_HEAD, train_cfg=TRAIN)
    out = renamed.weighted_stage_losses(0, {**values, "loss_mask": torch.tensor(1.0)})
    assert out == {"loss_cls": 2.0, "acc": 90.0, "total_mask": 3.0}


def test_convfc_box_head_splits_into_shared_features_and_branch_outputs():
    from detcore.registry import build

    torch.manual_seed(0)
    head = build("bbox_heads", {**BOX_HEAD, "type": "ConvFCBBoxHead", "num_shared_fcs": 1, "num_cls_fcs": 1})
    roi_feats = torch.randn(5, 4, 7, 7)
    shared = head.shared_features(roi_feats)
    assert shared.shape == (5, 16)
    torch.testing.assert_close(shared, torch.relu(head.shared_fcs[0](roi_feats.flatten(1))))
    for got, want in zip(head.branch_outputs(shared), head(roi_feats)):
        torch.testing.assert_close(got, want)
