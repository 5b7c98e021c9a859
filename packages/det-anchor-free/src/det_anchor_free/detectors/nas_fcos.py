"""NAS-FCOS (Wang et al. 2020): a backbone, the searched NASFCOS_FPN neck and a (NAS)FCOS head."""

from __future__ import annotations

from det_common.detectors import SingleStageDetector


class NASFCOS(SingleStageDetector):
    """A SingleStageDetector under NAS-FCOS's config name; its parts (NASFCOS_FPN, NASFCOSHead) come from the config."""
