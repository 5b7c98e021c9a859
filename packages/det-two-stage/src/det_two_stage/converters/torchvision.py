"""torchvision Faster R-CNN and Mask R-CNN state dicts -> detcore's (MMDetection v2) parameter names.

torchvision's box predictor has 91 COCO-category outputs with background first; detcore's
``fc_cls`` puts background last and ``fc_reg`` has no background deltas, so those rows move.
Box-delta weights need no rescaling: torchvision's (10, 10, 5, 5) weights equal target stds
(0.1, 0.1, 0.2, 0.2), and the RPN's (1, 1, 1, 1) equal stds of 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from det_common.detectors.torchvision_keys import RESNET_FPN_RULES, Rule, rename_state_dict

# torchvision >= 0.13 names the RPN conv "conv.0.0" (Conv2dNormActivation); older releases "conv".
RPN_RULES: list[Rule] = [
    (r"rpn\.head\.conv\.(?:0\.0\.)?(weight|bias)", r"rpn_head.rpn_conv.\1"),
    (r"rpn\.head\.cls_logits\.(weight|bias)", r"rpn_head.rpn_cls.\1"),
    (r"rpn\.head\.bbox_pred\.(weight|bias)", r"rpn_head.rpn_reg.\1"),
]
BOX_HEAD_RULES: list[Rule] = [
    (r"roi_heads\.box_head\.fc6\.(weight|bias)", r"roi_head.bbox_head.shared_fcs.0.\1"),
    (r"roi_heads\.box_head\.fc7\.(weight|bias)", r"roi_head.bbox_head.shared_fcs.1.\1"),
    (r"roi_heads\.box_predictor\.cls_score\.(weight|bias)", r"roi_head.bbox_head.fc_cls.\1"),
    (r"roi_heads\.box_predictor\.bbox_pred\.(weight|bias)", r"roi_head.bbox_head.fc_reg.\1"),
]


# torchvision's MaskRCNNHeads are Conv2dNormActivation blocks ("mask_head.<i>.0"; "mask_fcn<i+1>" before 0.13).
MASK_HEAD_RULES: list[Rule] = [
    (r"roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)", lambda m: f"roi_head.mask_head.convs.{m[1]}.conv.{m[2]}"),
    (r"roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)",
     lambda m: f"roi_head.mask_head.convs.{int(m[1]) - 1}.conv.{m[2]}"),
    (r"roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)", r"roi_head.mask_head.upsample.\1"),
    (r"roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)", r"roi_head.mask_head.conv_logits.\1"),
]


def background_last(tensor: Tensor) -> Tensor:
    """Classifier rows [bg, c1..cK] -> [c1..cK, bg]."""
    return torch.cat([tensor[1:], tensor[:1]], dim=0)


def drop_background_deltas(tensor: Tensor) -> Tensor:
    """Class-specific regressor rows [bg(4), c1(4)..cK(4)] -> [c1(4)..cK(4)]."""
    return tensor[4:]


def convert_fasterrcnn_resnet50_fpn(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Convert ``torchvision.models.detection.fasterrcnn_resnet50_fpn`` weights; returns
    (converted state dict, torchvision keys that have no place in detcore's model)."""
    converted, unplaced = rename_state_dict(state_dict, RESNET_FPN_RULES + RPN_RULES + BOX_HEAD_RULES)
    for key in [k for k in converted if k.endswith(".running_var")]:
        # FrozenBatchNorm2d (torchvision's pretrained models) has no counter; detcore's BatchNorm2d does
        converted.setdefault(key[: -len("running_var")] + "num_batches_tracked", torch.tensor(0))
    for suffix in ("weight", "bias"):
        cls_key = f"roi_head.bbox_head.fc_cls.{suffix}"
        reg_key = f"roi_head.bbox_head.fc_reg.{suffix}"
        if cls_key in converted:
            converted[cls_key] = background_last(converted[cls_key])
        if reg_key in converted:
            converted[reg_key] = drop_background_deltas(converted[reg_key])
    return converted, unplaced


def convert_maskrcnn_resnet50_fpn(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Convert ``torchvision.models.detection.maskrcnn_resnet50_fpn`` weights: the Faster R-CNN part as above,
    the mask head's convolutions, and its logits without the background channel."""
    box_part = {k: v for k, v in state_dict.items() if not k.startswith(("roi_heads.mask_head.", "roi_heads.mask_predictor."))}
    converted, unplaced = convert_fasterrcnn_resnet50_fpn(box_part)
    mask_part = {k: v for k, v in state_dict.items() if k not in box_part}
    masks, mask_unplaced = rename_state_dict(mask_part, MASK_HEAD_RULES)
    for suffix in ("weight", "bias"):
        key = f"roi_head.mask_head.conv_logits.{suffix}"
        if key in masks:
            masks[key] = masks[key][1:]  # channel 0 is torchvision's background
    return {**converted, **masks}, unplaced + mask_unplaced
