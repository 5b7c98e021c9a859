"""CornerNet (Law and Deng, "CornerNet: Detecting Objects as Paired Keypoints") and CentripetalNet (Dong et
al., "CentripetalNet: Pursuing High-quality Keypoint Pairs for Object Detection"): an hourglass backbone
and a corner head, no neck."""

from __future__ import annotations

from det_common.detectors.single_stage import SingleStageDetector


class CornerNet(SingleStageDetector):
    """A single-stage detector whose head pairs corner keypoints (``CornerHead`` / ``CentripetalHead``) on
    every hourglass stack's output; the test pipeline pads the image around its centre, which the head undoes."""
