"""Renaming torchvision detection state dicts to detcore's (MMDetection) parameter names.

A converter is a list of rules ``(regex, replacement)`` tried in order on every key; the
replacement is a ``re`` template or a function of the match. The ResNet-FPN rules are shared
by every torchvision ``*_resnet50_fpn`` model; families add rules for their heads.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence, Union

from torch import Tensor

Replacement = Union[str, Callable[[re.Match[str]], str]]
Rule = tuple[str, Replacement]

# torchvision >= 0.13 wraps convs in Conv2dNormActivation ("inner_blocks.0.0.weight"); older: "inner_blocks.0.weight"
RESNET_FPN_RULES: list[Rule] = [
    (r"backbone\.body\.(.+)", r"backbone.\1"),
    (r"backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?(weight|bias)", r"neck.lateral_convs.\1.conv.\2"),
    (r"backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?(weight|bias)", r"neck.fpn_convs.\1.conv.\2"),
]


def p6p7_rules(num_backbone_levels: int) -> list[Rule]:
    """torchvision's LastLevelP6P7 convs -> the extra ``fpn_convs`` after the backbone levels."""
    return [
        (r"backbone\.fpn\.extra_blocks\.p6\.(weight|bias)", rf"neck.fpn_convs.{num_backbone_levels}.conv.\1"),
        (r"backbone\.fpn\.extra_blocks\.p7\.(weight|bias)", rf"neck.fpn_convs.{num_backbone_levels + 1}.conv.\1"),
    ]


def rename_state_dict(
    state_dict: dict[str, Tensor], rules: Sequence[Rule]
) -> tuple[dict[str, Tensor], list[str]]:
    """Apply the first fully matching rule to each key; returns (renamed, keys no rule matched)."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed: dict[str, Tensor] = {}
    unplaced: list[str] = []
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            new_key = replacement(match) if callable(replacement) else match.expand(replacement)
            renamed[new_key] = value
            break
        else:
            unplaced.append(key)
    return renamed, unplaced
