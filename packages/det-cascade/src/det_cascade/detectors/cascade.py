"""Whole detectors of the cascade family."""

from __future__ import annotations

from det_common.detectors.two_stage import TwoStageDetector


class CascadeRCNN(TwoStageDetector):
    """Cascade R-CNN (Cai & Vasconcelos 2018): a two-stage detector whose RoI head is a CascadeRoIHead of box stages.

    Arguments as TwoStageDetector (``backbone``, ``neck``, ``rpn_head``, ``roi_head``, ``train_cfg``,
    ``test_cfg``); ``train_cfg.rcnn`` is a list with one table (assigner, sampler, pos_weight) per stage.
    """


class HybridTaskCascade(TwoStageDetector):
    """Hybrid Task Cascade (Chen et al. 2019): a two-stage detector whose RoI head is a HybridTaskCascadeRoIHead.

    The RoI head reads the batch's semantic maps (``batch.gt_sem_seg``) when it has a semantic branch.
    """
