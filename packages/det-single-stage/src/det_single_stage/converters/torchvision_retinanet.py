"""torchvision ``retinanet_resnet50_fpn`` state dict -> detcore RetinaNet (MMDetection names)."""

from __future__ import annotations

from torch import Tensor

from det_common.detectors.torchvision_keys import RESNET_FPN_RULES, Rule, p6p7_rules, rename_state_dict


def _tower_rule(branch: str, tower: str) -> list[Rule]:
    """The 4 ReLU conv layers of a torchvision RetinaNet head branch (v2 "conv.i.0" and v1 "conv.2i" layouts)."""
    prefix = rf"head\.{branch}\.conv\."
    return [
        (prefix + r"(\d+)\.0\.(weight|bias)", rf"bbox_head.{tower}.\1.conv.\2"),
        (prefix + r"(\d+)\.(weight|bias)", lambda m: f"bbox_head.{tower}.{int(m.group(1)) // 2}.conv.{m.group(2)}"),
    ]


RULES: list[Rule] = [
    *RESNET_FPN_RULES,
    *p6p7_rules(3),
    *_tower_rule("classification_head", "cls_convs"),
    *_tower_rule("regression_head", "reg_convs"),
    (r"head\.classification_head\.cls_logits\.(weight|bias)", r"bbox_head.retina_cls.\1"),
    (r"head\.regression_head\.bbox_reg\.(weight|bias)", r"bbox_head.retina_reg.\1"),
]


def convert(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(converted state dict, keys that could not be placed); use with ``retinanet_resnet50_fpn_torchvision``."""
    return rename_state_dict(state_dict, RULES)
