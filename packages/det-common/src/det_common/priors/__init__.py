"""Prior generators: multi-level anchors and points."""

from det_common.priors.anchor_generator import AnchorGenerator, anchor_inside_flags
from det_common.priors.point_generator import MlvlPointGenerator

__all__ = ["AnchorGenerator", "MlvlPointGenerator", "anchor_inside_flags"]
