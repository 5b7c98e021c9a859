"""CenterNet (Zhou et al., "Objects as Points"): backbone, upsampling neck and a center-point head."""

from __future__ import annotations

from det_common.detectors.single_stage import SingleStageDetector


class CenterNet(SingleStageDetector):
    """A single-stage detector whose head reads objects off one stride-4 heatmap (``CenterNetHead``);
    its test pipeline pads the image around its center (``RandomCenterCropPad``), which the head undoes."""
