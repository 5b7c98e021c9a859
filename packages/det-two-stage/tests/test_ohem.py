"""Faster R-CNN with OHEM (Shrivastava et al. 2016): the shipped config trains, and the RoIs kept are the hardest."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from det_common.bbox import bbox2roi
from det_common.testing import synthetic_batch, train_steps
from detcore.config import load_config
from detcore.registry import build
from detcore.structures import Instances

# fewer proposals and RoIs per image than COCO training uses (so that a 128x160 image still leaves a choice),
# everything else as shipped
CONFIG = ("faster_rcnn_r50_fpn_ohem_1x_coco",
          ("model.train_cfg.rpn_proposal.max_per_img=300", "model.train_cfg.rcnn.sampler.num=128"))


def hardest(head, image_feats, boxes, labels, inds, num):
    """The ``num`` of ``inds`` whose boxes have the largest softmax cross-entropy for their labels (by hand)."""
    logits = head.bbox_head(head.bbox_roi_extractor(image_feats, bbox2roi([boxes[inds]])))[0]
    loss = F.cross_entropy(logits, labels, reduction="none")
    return set(inds[loss.topk(min(num, len(inds))).indices].tolist()), loss


def test_ohem_faster_rcnn_trains_and_keeps_the_hardest_rois():
    torch.manual_seed(0)
    model = build("detectors", load_config(*CONFIG)["model"])
    head = model.roi_head
    sampler = head.samplers[0]
    assert type(sampler).__name__ == "OHEMSampler" and (sampler.num, sampler.pos_fraction) == (128, 0.25)
    batch = synthetic_batch(torch.Generator().manual_seed(0), num_images=2, size=(128, 160), num_classes=3)
    history = train_steps(model, batch, steps=2, lr=0.01)
    assert {"loss_cls", "loss_bbox", "loss_rpn_cls"} <= set(history[0])
    assert all(math.isfinite(h["total"]) for h in history)

    with torch.no_grad():
        feats = model.extract_feat(batch.images)
        proposals = model.rpn_head.predict(feats, batch.metas, rescale=False)
        boxes = [p.boxes[:, :4] for p in proposals]
        results = head.sample(0, feats, boxes, batch)
        for i, (res, gt) in enumerate(zip(results, batch.gt)):
            # by hand: every candidate (gt boxes first), its assignment, its softmax CE for its target class
            candidates = torch.cat([gt.boxes, boxes[i]])
            assign = head.assigners[0].assign(Instances(gt.image_size, priors=boxes[i]), gt)
            assign.add_gt_as_proposals(gt.labels)
            pos = torch.nonzero(assign.gt_inds > 0).flatten()
            neg = torch.nonzero(assign.gt_inds == 0).flatten()
            image_feats = [f[i : i + 1] for f in feats]
            want_pos, _ = hardest(head, image_feats, candidates, assign.labels[pos], pos, 32)
            assert set(res.pos_inds.tolist()) == want_pos
            num_neg = 128 - len(want_pos)
            assert len(neg) > num_neg  # there was a choice to make
            background = torch.full((len(neg),), head.num_classes)
            want_neg, loss = hardest(head, image_feats, candidates, background, neg, num_neg)
            assert set(res.neg_inds.tolist()) == want_neg
            assert loss[torch.isin(neg, res.neg_inds)].min() >= loss.median()  # not a random draw
