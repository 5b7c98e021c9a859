"""Necks: FPN and PAFPN."""

from det_common.necks.fpn import FPN
from det_common.necks.pafpn import PAFPN

__all__ = ["FPN", "PAFPN"]
