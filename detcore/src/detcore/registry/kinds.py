"""The component kinds: each is one entry-point group ``detcore.<kind>``."""

from __future__ import annotations

# kind -> what it holds (shown by `detcore list-components --help`)
KINDS: dict[str, str] = {
    "backbones": "image -> multi-level features (ResNet, ...)",
    "necks": "feature fusion between backbone and heads (FPN, ...)",
    "dense_heads": "heads over every feature location (RPN, RetinaNet, FCOS heads)",
    "roi_extractors": "per-RoI feature pooling (RoIAlign with level mapping)",
    "roi_heads": "second-stage heads that refine proposals",
    "bbox_heads": "per-RoI classification and box regression",
    "mask_heads": "per-RoI mask prediction",
    "detectors": "whole detectors (RetinaNet, Faster R-CNN, ...)",
    "losses": "loss functions",
    "assigners": "prior-to-ground-truth assignment",
    "samplers": "positive/negative sampling",
    "bbox_coders": "box regression encodings",
    "prior_generators": "anchors and points",
    "datasets": "datasets",
    "transforms": "data pipeline steps",
    "hooks": "runner hooks",
    "metrics": "evaluation metrics",
    "optimizers": "optimizers",
    "schedulers": "learning-rate schedules",
    "converters": "checkpoint converters from other toolboxes (name: SOURCE.ARCH)",
}

GROUP_PREFIX = "detcore."
CONFIGS_GROUP = "detcore.configs"
PLUGINS_GROUP = "detcore.plugins"
OPS_GROUP = "detcore.ops"
