"""Dense heads of the anchor-based single-stage family."""

from det_single_stage.heads.retina_head import RetinaHead

__all__ = ["RetinaHead"]
