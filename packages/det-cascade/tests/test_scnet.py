"""SCNet's parts (Vu et al. 2021): residual blocks, global context, feature relay, and the RoI head's changed
steps (one mask head on the last stage's positives, relayed box features, context added to every RoI)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from det_cascade.heads.feature_relay_head import FeatureRelayHead
from det_cascade.heads.global_context_head import GlobalContextHead
from det_cascade.heads.scnet_roi_head import SCNetFeatures, SCNetRoIHead
from det_cascade.layers.simplified_basic_block import SimplifiedBasicBlock, simplified_res_layer
from det_common.bbox import bbox2roi

from test_htc import EXTRACTOR, MASK_EXTRACTOR, SEMANTIC_EXTRACTOR, STDS, inputs, shapes_training, stage_cfg


def scnet(relay: bool = True, glbctx: bool = True) -> SCNetRoIHead:
    box = [{"type": "SCNetBBoxHead", "num_shared_fcs": 2, "in_channels": 8, "fc_out_channels": 32, "roi_feat_size": 7,
            "num_classes": 3, "reg_class_agnostic": True,
            "bbox_coder": {"type": "DeltaXYWHBBoxCoder", "target_stds": s}} for s in STDS]
    return SCNetRoIHead(
        3, [1.0, 0.5, 0.25], bbox_roi_extractor=EXTRACTOR, bbox_head=box, mask_roi_extractor=MASK_EXTRACTOR,
        mask_head={"type": "SCNetMaskHead", "num_convs": 4, "in_channels": 8, "conv_out_channels": 8, "num_classes": 3},
        semantic_roi_extractor=SEMANTIC_EXTRACTOR,
        semantic_head={"type": "SCNetSemanticHead", "num_ins": 2, "fusion_level": 1, "num_convs": 2, "in_channels": 8,
                       "conv_out_channels": 8, "num_classes": 4},
        glbctx_head={"type": "GlobalContextHead", "num_convs": 2, "in_channels": 8, "conv_out_channels": 8,
                     "num_classes": 3, "loss_weight": 3.0, "conv_to_res": True} if glbctx else None,
        feat_relay_head={"type": "FeatureRelayHead", "in_channels": 32, "out_conv_channels": 8,
                         "roi_feat_size": 7} if relay else None,
        train_cfg=[stage_cfg(t) for t in (0.5, 0.6, 0.7)],
    )


def test_simplified_block_and_residual_layers():
    torch.manual_seed(0)
    block = SimplifiedBasicBlock(4)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), x + block.conv2(block.conv1(x).relu()))  # no ReLU after the sum
    assert block.conv1.bias is not None and SimplifiedBasicBlock(4, norm_cfg={"type": "BN"}).conv1.bias is None
    assert len(simplified_res_layer("Head", 12, 4, 4)) == 6
    try:
        simplified_res_layer("SCNetMaskHead", 4, 4, 8)
    except ValueError as err:
        assert "SCNetMaskHead" in str(err) and "conv_to_res" in str(err)
    else:
        raise AssertionError("a width change must be refused")


def test_global_context_head_and_its_multilabel_loss():
    torch.manual_seed(0)
    head = GlobalContextHead(num_convs=2, in_channels=4, conv_out_channels=4, num_classes=5, loss_weight=3.0,
                             conv_to_res=True)
    feats = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4)]
    logits, context = head(feats)
    assert logits.shape == (2, 5) and context.shape == (2, 4, 1, 1)
    torch.testing.assert_close(context, head.convs(feats[-1]).mean(dim=(2, 3), keepdim=True))
    targets = torch.tensor([[0.0, 1, 0, 1, 0], [1.0, 0, 0, 0, 0]])
    want = 3.0 * F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(head.loss(logits, [torch.tensor([3, 1, 3]), torch.tensor([0])]), want)


def test_feature_relay_maps_box_features_to_mask_features():
    torch.manual_seed(0)
    relay = FeatureRelayHead(in_channels=6, out_conv_channels=2, roi_feat_size=3, scale_factor=2)
    x = torch.randn(4, 6)
    want = F.interpolate(relay.fc(x).view(4, 2, 3, 3), size=(6, 6), mode="bilinear", align_corners=True)
    torch.testing.assert_close(relay(x), want)
    assert relay(torch.zeros(0, 6)).shape == (0, 2, 6, 6)


def test_context_is_added_to_both_branches_and_relayed_features_to_the_mask_branch():
    torch.manual_seed(0)
    head = scnet().eval()
    feats, proposals, batch = inputs(torch.Generator().manual_seed(1))
    ctx, losses = head.context(feats, batch)
    assert isinstance(ctx, SCNetFeatures) and set(losses) == {"loss_semantic_seg", "loss_glbctx"}
    assert head.context(feats)[1] == {}
    rois = bbox2roi([p.boxes[:5] for p in proposals])
    plain = SCNetFeatures(feats, ctx.semantic, None)
    image_context = ctx.glbctx[rois[:, 0].long()]
    torch.testing.assert_close(head.bbox_roi_feats(1, ctx, rois), head.bbox_roi_feats(1, plain, rois) + image_context)
    relayed = torch.randn(10, 8, 14, 14)
    torch.testing.assert_close(head.mask_roi_feats(2, ctx.relaying(relayed), rois),
                               head.mask_roi_feats(2, plain, rois) + image_context + relayed)
    # at test time the last box stage's shared features of the final boxes are relayed to the one mask head
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    shared = head.bbox_head[2](head.bbox_roi_feats(2, ctx, rois), return_shared_feat=True)[2]
    logits = head.mask_head(head.mask_roi_feats(2, ctx.relaying(head.feat_relay_head(shared)), rois))
    want = logits[torch.arange(10), labels].sigmoid()
    torch.testing.assert_close(head.mask_probs(ctx, rois, labels), want)


def test_one_mask_head_trains_on_the_last_stage_positives_with_relayed_features():
    torch.manual_seed(0)
    head = scnet()
    feats, proposals, batch = inputs(torch.Generator().manual_seed(2))
    seen = {}
    original = head.mask_forward

    def recording(stage, feats, rois):
        seen["stage"], seen["rois"], seen["relayed"] = stage, rois, feats.relayed
        return original(stage, feats, rois)

    head.mask_forward = recording
    losses = head.loss(feats, proposals, batch)
    assert seen["stage"] == 2 and seen["relayed"].shape == (len(seen["rois"]), 8, 14, 14)
    assert "loss_mask" in losses and not any(name.endswith(".loss_mask") for name in losses)
    assert {"s0.loss_cls", "s2.loss_bbox", "loss_glbctx", "loss_semantic_seg"} <= set(losses)
    # the mask loss is weighted by the sum of the stage weights (1.75), not by the last stage's (0.25)
    raw = head.weighted_stage_losses(2, {"loss_mask": torch.tensor(1.0), "loss_cls": torch.tensor(1.0)})
    assert raw == {"loss_mask": 1.75, "s2.loss_cls": 0.25}
    # without relay or global context the head is HTC's semantic cascade with one mask head
    bare = scnet(relay=False, glbctx=False)
    assert "loss_glbctx" not in bare.loss(feats, proposals, batch)


def test_scnet_shapes_config_trains_on_a_synthetic_batch_with_semantic_maps():
    history = shapes_training("scnet_r18_fpn_shapes")
    assert {"loss_semantic_seg", "loss_glbctx", "loss_mask", "s2.loss_cls"} <= set(history[0])
    assert history[-1]["total"] < history[0]["total"]
    assert history[-1]["loss_mask"] < history[0]["loss_mask"]
