"""SCNet (Vu et al. 2021, "SCNet: Training Inference Sample Consistency for Instance Segmentation")."""

from __future__ import annotations

from det_common.detectors.two_stage import TwoStageDetector


class SCNet(TwoStageDetector):
    """A two-stage detector whose RoI head is an SCNetRoIHead (cascade boxes, one mask head fed relayed box
    features, global context and, when configured, semantic features read from ``batch.gt_sem_seg``)."""
