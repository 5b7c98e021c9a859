"""Assigners: max-IoU and ATSS."""

from det_common.assigners.atss import ATSSAssigner
from det_common.assigners.center_region import CenterRegionAssigner
from det_common.assigners.max_iou import MaxIoUAssigner

__all__ = ["ATSSAssigner", "CenterRegionAssigner", "MaxIoUAssigner"]
