"""torchvision ``fcos_resnet50_fpn`` state dict -> detcore FCOS (MMDetection names)."""

from __future__ import annotations

import re

import torch
from torch import Tensor

from det_common.detectors.torchvision_keys import RESNET_FPN_RULES, Rule, p6p7_rules, rename_state_dict

NUM_LEVELS = 5  # P3-P7


def _tower_rules(branch: str, tower: str) -> list[Rule]:
    """torchvision's tower is Sequential(conv, GroupNorm, ReLU) x 4: index 3i is the conv, 3i+1 the norm."""

    def rename(match: re.Match[str]) -> str:
        index, param = int(match.group(1)), match.group(2)
        layer = "conv" if index % 3 == 0 else "gn"
        return f"bbox_head.{tower}.{index // 3}.{layer}.{param}"

    return [(rf"head\.{branch}\.conv\.(\d+)\.(weight|bias)", rename)]


RULES: list[Rule] = [
    *RESNET_FPN_RULES,
    *p6p7_rules(3),
    *_tower_rules("classification_head", "cls_convs"),
    *_tower_rules("regression_head", "reg_convs"),
    (r"head\.classification_head\.cls_logits\.(weight|bias)", r"bbox_head.conv_cls.\1"),
    (r"head\.regression_head\.bbox_reg\.(weight|bias)", r"bbox_head.conv_reg.\1"),
    (r"head\.regression_head\.bbox_ctrness\.(weight|bias)", r"bbox_head.conv_centerness.\1"),
]


def convert(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(converted state dict, keys that could not be placed); use with ``fcos_resnet50_fpn_torchvision``.

    torchvision's FCOS has no per-level regression scales, so ``bbox_head.scales.i.scale`` are set to 1.
    """
    converted, unplaced = rename_state_dict(state_dict, RULES)
    for level in range(NUM_LEVELS):
        converted[f"bbox_head.scales.{level}.scale"] = torch.tensor(1.0)
    return converted, unplaced
