"""Dense heads of the anchor-free family."""

from det_anchor_free.heads.fcos_head import FCOSHead

__all__ = ["FCOSHead"]
