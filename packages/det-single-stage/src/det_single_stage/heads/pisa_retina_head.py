"""PISARetinaHead (Cao et al. 2020, "Prime Sample Attention in Object Detection"): RetinaNet whose positives'
classification weights follow ISR-P (prime samples, by IoU hierarchical local rank, count most) and whose box
loss gains CARL (regression weighted by the classification score), per ``train_cfg.isr`` / ``train_cfg.carl``."""

from __future__ import annotations

import torch
from torch import Tensor

from det_common.heads import DenseOutputs, DensePriors, DenseTargets, flatten_levels
from det_common.losses.pisa import carl_loss, isr_p_weights
from det_single_stage.heads.retina_head import RetinaHead
from detcore.structures import Batch


class PISARetinaHead(RetinaHead):
    """RetinaHead (same layers and inference) with PISA's losses.

    ``train_cfg.isr``: ``{k, bias}`` of ISR-P (absent: plain weights); ``train_cfg.carl``: ``{k, bias}`` of
    CARL, reported as ``loss_carl`` (absent: no such loss).
    """

    train_cfg_keys = (*RetinaHead.train_cfg_keys, "isr", "carl")

    def loss_from_targets(
        self, outs: DenseOutputs, priors: DensePriors, targets: DenseTargets, batch: Batch
    ) -> dict[str, Tensor]:
        """Focal and box losses (label weights re-weighted by ISR-P) averaged by ``targets.avg_factor``, plus CARL."""
        cls = flatten_levels(outs.cls_scores, self.cls_out_channels).reshape(-1, self.cls_out_channels)
        reg = flatten_levels(outs.bbox_preds, self.box_dim).reshape(-1, self.box_dim)
        num_images = len(batch.metas)
        label_weights = targets.label_weights
        isr = self.train_cfg.get("isr")
        if isr is not None:
            # object ids unique over the batch: image index x (most objects of an image + 1) + object index
            per_image = targets.labels.shape[0] // num_images
            stride = max(len(gt) for gt in batch.gt or []) + 1 if batch.gt else 1
            image_ids = torch.arange(num_images, device=cls.device).repeat_interleave(per_image)
            gt_ids = image_ids * stride + targets.assigned_gt_inds - 1
            label_weights = isr_p_weights(
                cls.detach(), reg.detach(), targets.labels, label_weights, targets.bbox_targets,
                priors.flat.repeat(num_images, 1), gt_ids, self.loss_cls, self.bbox_coder,
                num_classes=self.num_classes, **isr,
            )
        losses = {
            "loss_cls": self.loss_cls(cls, targets.labels, label_weights, avg_factor=targets.avg_factor),
            "loss_bbox": self.loss_bbox(reg, targets.bbox_targets, targets.bbox_weights,
                                        avg_factor=targets.avg_factor),
        }
        carl = self.train_cfg.get("carl")
        if carl is not None:
            losses["loss_carl"] = carl_loss(
                cls, targets.labels, reg, targets.bbox_targets, self.loss_bbox, avg_factor=targets.avg_factor,
                sigmoid=self.use_sigmoid_cls, num_classes=self.num_classes, **carl,
            )
        return losses
