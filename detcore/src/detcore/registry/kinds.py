"""Component kinds. Every entry-point group ``detcore.<kind>`` is a kind, except the few groups
that hold something other than components (configs, plugins, op backends).

Kinds are open: a distribution that declares ``[project.entry-points."detcore.match_costs"]``
introduces the kind ``match_costs`` with no kernel edit. The table below only gives the kinds the
kernel and the first-party families use a line of help; it does not limit what is a kind.
"""

from __future__ import annotations

GROUP_PREFIX = "detcore."
CONFIGS_GROUP = "detcore.configs"
PLUGINS_GROUP = "detcore.plugins"
OPS_GROUP = "detcore.ops"

# Groups under the prefix that are not component kinds: configs are folders (detcore.config),
# plugins are pluggy modules (detcore.plugins), ops are compiled backends (detcore.ops.backends).
NON_COMPONENT_GROUPS: frozenset[str] = frozenset({CONFIGS_GROUP, PLUGINS_GROUP, OPS_GROUP})

# kind -> what it holds (shown by `detcore list-components --kinds`)
KIND_DESCRIPTIONS: dict[str, str] = {
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


def kind_of_group(group: str) -> str | None:
    """The kind an entry-point group declares, or None when the group holds no components."""
    if not group.startswith(GROUP_PREFIX) or group in NON_COMPONENT_GROUPS:
        return None
    kind = group[len(GROUP_PREFIX):]
    return kind or None
