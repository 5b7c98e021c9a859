"""Toys that declare their ``train_cfg`` / ``test_cfg`` keys (detcore.engine.validation):
a detector routing its tables to a dense head, which lists its own keys."""

from __future__ import annotations

from typing import Any, Mapping

from detcore.registry import build
from detcore_toys import ToyDetector


class CfgHead:
    """A dense head's declared keys (MMDetection's names)."""

    train_cfg_keys = ("assigner", "sampler", "allowed_border", "pos_weight", "debug")
    test_cfg_keys = ("nms_pre", "min_bbox_size", "score_thr", "nms", "max_per_img")

    def __init__(self, num_classes: int = 3, train_cfg: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        self.num_classes = num_classes
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})


class CfgDetector(ToyDetector):
    """A ToyDetector whose ``train_cfg`` / ``test_cfg`` belong to its ``bbox_head`` (a CfgHead)."""

    cfg_routes = {"train_cfg": ("bbox_head", "dense_heads", "train_cfg"),
                  "test_cfg": ("bbox_head", "dense_heads", "test_cfg")}

    def __init__(self, bbox_head: Mapping[str, Any], train_cfg: Mapping[str, Any] | None = None,
                 test_cfg: Mapping[str, Any] | None = None) -> None:
        head = build("dense_heads", bbox_head, train_cfg=train_cfg, test_cfg=test_cfg)
        super().__init__(num_classes=head.num_classes)
        self.head_cfg = (head.train_cfg, head.test_cfg)
