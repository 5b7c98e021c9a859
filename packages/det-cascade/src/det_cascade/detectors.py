"""Whole detectors of the cascade family."""

from __future__ import annotations

from det_two_stage.detectors import FasterRCNN


class CascadeRCNN(FasterRCNN):
    """Cascade R-CNN (Cai & Vasconcelos 2018): Faster R-CNN whose RoI head is a CascadeRoIHead of box stages.

    Same arguments as FasterRCNN; ``train_cfg.rcnn`` is a list with one table (assigner, sampler,
    pos_weight) per stage.
    """
