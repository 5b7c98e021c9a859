"""Box and mask heads of the second stage: layout, targets, losses, post-processing, mask pasting."""

import torch
import torch.nn.functional as F

from detcore.interfaces import SamplingResult
from detcore.structures import ImageMeta, Instances
from det_common.heads.roi import FCNMaskHead, Shared2FCBBoxHead, Shared4Conv1FCBBoxHead


def _sampling(pos_priors, pos_gt_boxes, pos_gt_labels, neg_priors):
    num_pos = len(pos_priors)
    return SamplingResult(
        pos_inds=torch.arange(num_pos),
        neg_inds=torch.arange(num_pos, num_pos + len(neg_priors)),
        pos_priors=pos_priors,
        neg_priors=neg_priors,
        pos_gt_boxes=pos_gt_boxes,
        pos_gt_labels=pos_gt_labels,
        pos_assigned_gt_inds=torch.arange(num_pos),
        pos_is_gt=torch.zeros(num_pos, dtype=torch.bool),
    )


def test_shared2fc_layout_and_class_agnostic_option():
    head = Shared2FCBBoxHead(in_channels=16, fc_out_channels=32, roi_feat_size=7, num_classes=5)
    shapes = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    assert shapes == {
        "fc_cls.weight": (6, 32), "fc_cls.bias": (6,), "fc_reg.weight": (20, 32), "fc_reg.bias": (20,),
        "shared_fcs.0.weight": (32, 16 * 49), "shared_fcs.0.bias": (32,),
        "shared_fcs.1.weight": (32, 32), "shared_fcs.1.bias": (32,),
    }
    agnostic = Shared2FCBBoxHead(in_channels=16, fc_out_channels=32, num_classes=5, reg_class_agnostic=True)
    cls_score, bbox_pred = agnostic(torch.randn(3, 16, 7, 7))
    assert cls_score.shape == (3, 6) and bbox_pred.shape == (3, 4)
    conv_head = Shared4Conv1FCBBoxHead(in_channels=16, conv_out_channels=8, fc_out_channels=32, num_classes=5,
                                       norm_cfg={"type": "GN", "num_groups": 4})
    assert "shared_convs.3.conv.weight" in conv_head.state_dict() and "shared_convs.0.gn.weight" in conv_head.state_dict()
    assert conv_head(torch.randn(2, 16, 7, 7))[1].shape == (2, 20)


def test_targets_and_losses_follow_mmdetection():
    head = Shared2FCBBoxHead(in_channels=4, fc_out_channels=8, num_classes=3)
    pos = torch.tensor([[10.0, 10.0, 50.0, 50.0], [0.0, 0.0, 20.0, 40.0]])
    gt = torch.tensor([[12.0, 8.0, 52.0, 48.0], [2.0, 0.0, 20.0, 44.0]])
    neg = torch.tensor([[60.0, 60.0, 90.0, 90.0]])
    res = _sampling(pos, gt, torch.tensor([2, 0]), neg)
    labels, label_weights, targets, weights = head.get_targets([res])
    assert labels.tolist() == [2, 0, 3]
    assert label_weights.tolist() == [1.0, 1.0, 1.0]
    torch.testing.assert_close(targets[:2], head.bbox_coder.encode(pos, gt))
    assert targets[2].abs().sum() == 0 and weights.tolist() == [[1.0] * 4, [1.0] * 4, [0.0] * 4]

    g = torch.Generator().manual_seed(0)
    cls_score = torch.randn(3, 4, generator=g)
    bbox_pred = torch.randn(3, 12, generator=g)
    rois = torch.cat([torch.zeros(3, 1), torch.cat([pos, neg])], dim=1)
    losses = head.loss(cls_score, bbox_pred, rois, labels, label_weights, targets, weights)
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(cls_score, labels))
    picked = torch.stack([bbox_pred.view(3, 3, 4)[0, 2], bbox_pred.view(3, 3, 4)[1, 0]])
    torch.testing.assert_close(losses["loss_bbox"], (picked - targets[:2]).abs().sum() / 3)  # L1, averaged over all RoIs
    assert 0.0 <= float(losses["acc"]) <= 100.0


def test_predict_decodes_per_class_thresholds_and_rescales():
    head = Shared2FCBBoxHead(in_channels=4, fc_out_channels=8, num_classes=2)
    rois = torch.tensor([[0.0, 10.0, 10.0, 50.0, 30.0], [0.0, 60.0, 60.0, 100.0, 100.0]])
    # RoI 0 is class 1 (prob ~0.98), RoI 1 is background; zero deltas keep the RoI box
    cls_score = torch.tensor([[0.0, 5.0, 1.0], [0.0, 0.0, 9.0]])
    bbox_pred = torch.zeros(2, 8)
    meta = ImageMeta(ori_shape=(60, 60), img_shape=(120, 120), pad_shape=(128, 128), scale_factor=(2.0, 2.0))
    cfg = {"score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5}, "max_per_img": 100}
    dets = head.predict_by_feat(rois, cls_score, bbox_pred, meta, rescale=True, test_cfg=cfg)
    assert dets.labels.tolist() == [1]
    torch.testing.assert_close(dets.boxes, torch.tensor([[5.0, 5.0, 25.0, 15.0]]))
    torch.testing.assert_close(dets.scores, F.softmax(cls_score[0], 0)[1:2])
    assert dets.image_size == (60, 60)
    flipped = meta.replace(flip=True, flip_direction="horizontal")
    mirrored = head.predict_by_feat(rois, cls_score, bbox_pred, flipped, rescale=True, test_cfg=cfg)
    torch.testing.assert_close(mirrored.boxes, torch.tensor([[35.0, 5.0, 55.0, 15.0]]))  # x -> 120 - x, then / 2
    tiny = head.predict_by_feat(torch.tensor([[0.0, 10.0, 10.0, 10.005, 30.0]]), cls_score[:1], bbox_pred[:1],
                                meta, rescale=False, test_cfg={**cfg, "min_bbox_size": 0.01})
    assert len(tiny) == 0
    # an image without RoIs (e.g. no proposal survived) gives no detections instead of a reshape error
    for agnostic in (False, True):
        head = Shared2FCBBoxHead(in_channels=4, fc_out_channels=8, num_classes=2, reg_class_agnostic=agnostic)
        none = head.predict_by_feat(rois[:0], cls_score[:0], torch.zeros(0, 4 if agnostic else 8), meta, True, cfg)
        assert len(none) == 0 and none.boxes.shape == (0, 4)


def test_fcn_mask_head_layout_targets_and_loss():
    head = FCNMaskHead(num_convs=2, in_channels=8, conv_out_channels=8, num_classes=3)
    assert {k for k in head.state_dict()} == {
        "convs.0.conv.weight", "convs.0.conv.bias", "convs.1.conv.weight", "convs.1.conv.bias",
        "upsample.weight", "upsample.bias", "conv_logits.weight", "conv_logits.bias",
    }
    assert head(torch.randn(2, 8, 14, 14)).shape == (2, 3, 28, 28)
    mask = torch.zeros(1, 40, 40, dtype=torch.bool)
    mask[0, 10:30, 10:20] = True  # the left half of the box [10, 10, 30, 30]
    gt = Instances((40, 40), boxes=torch.tensor([[10.0, 10.0, 30.0, 30.0]]), labels=torch.tensor([1]), masks=mask)
    res = _sampling(torch.tensor([[10.0, 10.0, 30.0, 30.0]]), gt.boxes, gt.labels, torch.zeros(0, 4))
    targets = head.get_targets([res], [gt], mask_size=4)
    assert targets.tolist() == [[[1.0, 1.0, 0.0, 0.0]] * 4]
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 1] = torch.tensor([[5.0, 5.0, -5.0, -5.0]] * 4)
    loss = head.loss(logits, targets, torch.tensor([1]))["loss_mask"]
    torch.testing.assert_close(loss, F.binary_cross_entropy_with_logits(logits[0, 1], targets[0]))


def test_masks_are_pasted_into_their_boxes():
    head = FCNMaskHead(num_convs=0, in_channels=4, num_classes=2)
    logits = torch.full((2, 2, 28, 28), -10.0)
    logits[0, 1] = 10.0  # detection 0 (class 1): its whole box
    logits[1, 0, :, :14] = 10.0  # detection 1 (class 0): the left half of its box
    boxes = torch.tensor([[4.0, 6.0, 12.0, 10.0], [20.0, 20.0, 40.0, 30.0]])
    masks = head.predict_by_feat(logits, boxes, torch.tensor([1, 0]), (50, 60))
    assert masks.shape == (2, 50, 60) and masks.dtype == torch.bool
    expected0 = torch.zeros(50, 60, dtype=torch.bool)
    expected0[6:10, 4:12] = True
    assert torch.equal(masks[0], expected0)
    expected1 = torch.zeros(50, 60, dtype=torch.bool)
    expected1[20:30, 20:30] = True
    assert torch.equal(masks[1], expected1)
