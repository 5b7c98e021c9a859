"""Dense heads of the anchor-free family."""

from det_anchor_free.heads.fcos_head import FCOSHead
from det_anchor_free.heads.fovea_head import FoveaHead
from det_anchor_free.heads.vfnet_head import VFNetHead

__all__ = ["FCOSHead", "FoveaHead", "VFNetHead"]
